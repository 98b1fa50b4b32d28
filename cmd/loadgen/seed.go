package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/store"
)

// dataset describes the generated Mautic data.
type dataset struct {
	Contacts   int              `json:"contacts"`
	Seed       uint64           `json:"seed"`
	SeededAt   time.Time        `json:"seeded_at"`
	MessageID  int64            `json:"message_id"`
	CampaignID int64            `json:"campaign_id"`
	EventID    int64            `json:"event_id"`
	Content    map[string]int64 `json:"content"` // channel → emails.id, sms_messages.id, push_notifications.id
	Rows       map[string]int64 `json:"rows"`
	Seconds    float64          `json:"seconds"`
}

// seedChunk is the number of contacts written per transaction.
const seedChunk = 1000

// seedWorkers is the number of concurrent seeding transactions.
const seedWorkers = 3

// seedDataset writes the marketing message, its content, a campaign and
// the contacts with their rules, DNC rows, push ids and send history.
func seedDataset(ctx context.Context, b *benchDB, contacts int, seedValue uint64, prog *progress) (*dataset, error) {
	start := time.Now()
	// The rows are consistent by construction: skip the per-row checks.
	pool, err := b.pool(seedWorkers+1, map[string]string{"foreign_key_checks": "0", "unique_checks": "0"})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	now := time.Now().UTC().Truncate(time.Second)
	ds := &dataset{Contacts: contacts, Seed: seedValue, SeededAt: now, Content: map[string]int64{}, Rows: map[string]int64{}}
	if err := seedContent(ctx, seed.New(pool, b.Prefix), ds); err != nil {
		return nil, err
	}

	chunks := make(chan int64)
	var (
		mu   sync.Mutex
		errs []error
		done int64
	)
	var wg sync.WaitGroup
	for w := 0; w < seedWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range chunks {
				to := min(from+seedChunk, int64(contacts)+1)
				// Concurrent bulk inserts into the same tables can
				// deadlock on their gap locks; a chunk is one
				// transaction, so running it again is safe.
				var rows map[string]int64
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					if rows, err = seedContacts(ctx, pool, b, ds, from, to); !store.Retryable(err) {
						break
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for k, v := range rows {
					ds.Rows[k] += v
				}
				done += to - from
				prog.update(done)
				mu.Unlock()
			}
		}()
	}
	for from := int64(1); from <= int64(contacts); from += seedChunk {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		chunks <- from
	}
	close(chunks)
	wg.Wait()
	prog.finish()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Fresh statistics for the optimizer after a bulk load.
	for _, t := range []string{"leads", "lead_frequencyrules", "lead_donotcontact", "push_ids", "email_stats", "sms_message_stats",
		"push_notification_stats"} {
		if _, err := b.DB.ExecContext(ctx, "ANALYZE TABLE "+b.T(t)); err != nil {
			return nil, fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	ds.Seconds = time.Since(start).Seconds()
	return ds, nil
}

// seedContent writes the message with email, SMS and web push content, all
// published, and a campaign with its "Send a webhook" event.
func seedContent(ctx context.Context, s *seed.Seeder, ds *dataset) error {
	var err error
	if ds.Content["email"], err = s.Email(ctx, seed.Email{Name: "Spring sale", Subject: "{contactfield=firstname|Hello}, our spring sale starts today",
		HTML: emailHTML, Text: "Hi {contactfield=firstname|there}, our spring sale starts today. {unsubscribe_url}",
		FromAddress: "news@example.test", FromName: "Example News"}); err != nil {
		return err
	}
	if ds.Content["sms"], err = s.SMS(ctx, seed.SMS{Name: "Spring sale SMS",
		Message: "Hi {contactfield=firstname|there}, spring sale: 20% off until Sunday https://example.test/s"}); err != nil {
		return err
	}
	if ds.Content["notification"], err = s.Push(ctx, seed.Push{Name: "Spring sale push", Heading: "Spring sale, {contactfield=firstname|friend}",
		Message: "20% off until Sunday", URL: "https://example.test/sale"}); err != nil {
		return err
	}
	if ds.MessageID, err = s.Message(ctx, "Spring sale", seed.Channel{Channel: "email", ChannelID: ds.Content["email"]},
		seed.Channel{Channel: "sms", ChannelID: ds.Content["sms"]},
		seed.Channel{Channel: "notification", ChannelID: ds.Content["notification"]}); err != nil {
		return err
	}
	ds.CampaignID, ds.EventID, err = s.Campaign(ctx, "Spring campaign")
	return err
}

// tables of the per-contact rows, with their columns.
var (
	leadCols  = []string{"id", "is_published", "date_added", "date_modified", "points", "firstname", "lastname", "email", "mobile", "phone", "city", "country"}
	ruleCols  = []string{"lead_id", "date_added", "frequency_number", "frequency_time", "channel", "preferred_channel", "pause_from_date", "pause_to_date"}
	dncCols   = []string{"lead_id", "date_added", "reason", "channel", "channel_id", "comments"}
	pushCols  = []string{"push_id", "lead_id", "enabled", "mobile"}
	eStatCols = []string{"email_id", "lead_id", "email_address", "date_sent", "is_read", "is_failed", "viewed_in_browser", "tracking_hash",
		"retry_count", "source", "source_id", "tokens", "open_count", "open_details"}
	sStatCols = []string{"sms_id", "lead_id", "date_sent", "is_failed", "tracking_hash", "source", "source_id", "tokens", "details"}
	pStatCols = []string{"notification_id", "lead_id", "date_sent", "is_clicked", "retry_count", "source", "source_id", "tokens"}
)

// seedContacts writes contacts [from, to) in one transaction and returns
// the rows written per table.
func seedContacts(ctx context.Context, pool *sqlx.DB, b *benchDB, ds *dataset, from, to int64) (map[string]int64, error) {
	tx, err := pool.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("seed contacts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	tables := map[string]*seed.Bulk{
		"leads":                   seed.NewBulk(b.T("leads"), leadCols, bulkRows),
		"lead_frequencyrules":     seed.NewBulk(b.T("lead_frequencyrules"), ruleCols, bulkRows),
		"lead_donotcontact":       seed.NewBulk(b.T("lead_donotcontact"), dncCols, bulkRows),
		"push_ids":                seed.NewBulk(b.T("push_ids"), pushCols, bulkRows),
		"email_stats":             seed.NewBulk(b.T("email_stats"), eStatCols, bulkRows),
		"sms_message_stats":       seed.NewBulk(b.T("sms_message_stats"), sStatCols, bulkRows),
		"push_notification_stats": seed.NewBulk(b.T("push_notification_stats"), pStatCols, bulkRows),
	}
	// Leads first: every other table points at them.
	order := []string{"leads", "lead_frequencyrules", "lead_donotcontact", "push_ids", "email_stats", "sms_message_stats", "push_notification_stats"}
	now := ds.SeededAt
	profiles := make([]profile, 0, to-from)
	for id := from; id < to; id++ {
		profiles = append(profiles, makeProfile(ds.Seed, id))
	}
	add := func(table string, vals ...any) error { return tables[table].Add(ctx, tx, vals...) }
	for _, p := range profiles {
		if err := add("leads", p.ID, 1, now, now, 0, p.First, p.Last, orNull(p.Email), orNull(p.Mobile), orNull(p.Phone),
			orNull(p.City), orNull(p.Country)); err != nil {
			return nil, err
		}
	}
	if err := tables["leads"].Flush(ctx, tx); err != nil {
		return nil, err
	}
	for _, p := range profiles {
		if err := addContactRows(p, ds, now, add); err != nil {
			return nil, err
		}
	}
	rows := map[string]int64{}
	for _, t := range order {
		if err := tables[t].Flush(ctx, tx); err != nil {
			return nil, err
		}
		rows[t] = tables[t].Total
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("seed contacts: %w", err)
	}
	return rows, nil
}

// addContactRows queues a contact's rows other than its leads row.
func addContactRows(p profile, ds *dataset, now time.Time, add func(table string, vals ...any) error) error {
	for _, r := range p.Rules {
		var num, unit, from, to any
		if r.Unit != "" {
			num, unit = r.Number, r.Unit
		}
		if r.PauseFrom != 0 || r.PauseTo != 0 {
			from, to = now.Add(-r.PauseFrom), now.Add(-r.PauseTo)
		}
		if err := add("lead_frequencyrules", p.ID, now, num, unit, r.Channel, r.Preferred, from, to); err != nil {
			return err
		}
	}
	for _, d := range p.DNC {
		if err := add("lead_donotcontact", p.ID, now, d.Reason, d.Channel, nil, "loadgen"); err != nil {
			return err
		}
	}
	if p.WebPush {
		if err := add("push_ids", "web-"+strconv.FormatInt(p.ID, 10), p.ID, true, false); err != nil {
			return err
		}
	}
	if p.MobilePush {
		if err := add("push_ids", "app-"+strconv.FormatInt(p.ID, 10), p.ID, true, true); err != nil {
			return err
		}
	}
	for i, ago := range p.EmailSent {
		address := p.Email
		if address == "" {
			address = fmt.Sprintf("old%d@example.test", p.ID) // an address the contact no longer has
		}
		if err := add("email_stats", ds.Content["email"], p.ID, address, now.Add(-ago), false, false, false,
			trackingHash(p.ID, 'e', i), 0, nil, nil, "a:0:{}", 0, "a:0:{}"); err != nil {
			return err
		}
	}
	for i, ago := range p.SMSSent {
		if err := add("sms_message_stats", ds.Content["sms"], p.ID, now.Add(-ago), false, trackingHash(p.ID, 's', i), nil, nil,
			"a:0:{}", "[]"); err != nil {
			return err
		}
	}
	for _, ago := range p.PushSent {
		if err := add("push_notification_stats", ds.Content["notification"], p.ID, now.Add(-ago), false, 0, nil, nil, "a:0:{}"); err != nil {
			return err
		}
	}
	return nil
}

// trackingHash is a unique hash for a seeded stats row (Mautic's are
// random; these only need to be distinct).
func trackingHash(id int64, kind byte, i int) string {
	return "lg" + string(kind) + strconv.FormatInt(id, 36) + "x" + strconv.Itoa(i)
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// emailHTML is a newsletter of realistic size (about 4 KB) with contact
// tokens and Mautic's unsubscribe and web view tokens.
var emailHTML = func() string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>{subject}</title>` +
		`<style>body{font-family:Arial,sans-serif;color:#222}td{padding:8px}.cta{background:#0a6;color:#fff;padding:12px 20px}</style>` +
		`</head><body><table width="600" align="center"><tr><td><a href="{webview_url}">View in your browser</a></td></tr>` +
		`<tr><td><h1>Hello {contactfield=firstname|there} {contactfield=lastname},</h1></td></tr>`)
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, `<tr><td><h2>Offer %d</h2><p>Our spring collection has arrived in {contactfield=city|your city}. `+
			`Item %d is 20%% off until Sunday, with free delivery to {contactfield=country|you} on orders over 50 euros. `+
			`Quantities are limited, so come early.</p><p><a class="cta" href="https://example.test/offer/%d">See offer %d</a></p></td></tr>`,
			i, i, i, i)
	}
	b.WriteString(`<tr><td><small>You receive this because you subscribed. <a href="{unsubscribe_url}">Unsubscribe</a>.</small></td></tr>` +
		`</table></body></html>`)
	return b.String()
}()
