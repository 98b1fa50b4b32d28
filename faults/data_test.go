package faults

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// Contact addresses are derived from the contact id, so that whatever a
// provider received names its contact.
func emailOf(id int64) string  { return fmt.Sprintf("c%d@example.test", id) }
func mobileOf(id int64) string { return fmt.Sprintf("+14155%06d", id) }
func playerOf(id int64) string { return fmt.Sprintf("player-%d", id) }
func handleOf(id int64) string { return fmt.Sprintf("h%d", id) }

// contactOf parses a provider-side address back into its contact id; 0
// when it is none of ours.
func contactOf(channel, address string) int64 {
	var s string
	switch channel {
	case "email":
		s = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(address), "c"), "@example.test")
	case "sms":
		s = strings.TrimPrefix(address, "+14155")
	case "notification":
		s = strings.TrimPrefix(address, "player-")
	case "tweet":
		s = strings.TrimPrefix(strings.TrimPrefix(address, "@"), "h")
	default: // webhook channels: the payload's contact id
		s = address
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// reach says which addresses a contact has.
type reach struct{ email, mobile, push, twitter bool }

var reachAll = reach{email: true, mobile: true, push: true, twitter: true}

// dataset is Mautic's side of a test: content, a campaign, messages and
// contacts, on a fresh database.
type dataset struct {
	t          testing.TB
	db         *testdb.DB
	s          *seed.Seeder
	content    map[string]int64 // channel → content id (custom channels: 1)
	campaignID int64
	eventID    int64
}

// newDataset writes published content for every channel and a campaign.
func newDataset(t testing.TB, db *testdb.DB) *dataset {
	t.Helper()
	ctx := context.Background()
	s := seed.New(db.DB, db.Prefix)
	ds := &dataset{t: t, db: db, s: s, content: map[string]int64{"hook": 1, "fallback": 1}}
	var err error
	must := func(id int64, e error) int64 {
		if e != nil {
			t.Fatalf("seed: %v", e)
		}
		return id
	}
	ds.content["email"] = must(s.Email(ctx, seed.Email{Name: "Faults", Subject: "Hello {contactfield=firstname|there}",
		HTML: "<html><body><p>Hello {contactfield=firstname|there}</p><a href=\"{unsubscribe_url}\">Unsubscribe</a></body></html>",
		Text: "Hello {contactfield=firstname|there}", FromAddress: "news@example.test", FromName: "Faults"}))
	ds.content["sms"] = must(s.SMS(ctx, seed.SMS{Name: "Faults SMS", Message: "Hello {contactfield=firstname|there}"}))
	ds.content["notification"] = must(s.Push(ctx, seed.Push{Name: "Faults push", Heading: "Hello", Message: "Hello {contactfield=firstname|there}"}))
	ds.content["tweet"] = must(s.Tweet(ctx, "Faults tweet", "Hello", true))
	ds.campaignID, ds.eventID, err = s.Campaign(ctx, "Faults")
	if err != nil {
		t.Fatalf("seed campaign: %v", err)
	}
	return ds
}

// message writes a marketing message with the channels in that order.
func (ds *dataset) message(chans ...string) int64 {
	ds.t.Helper()
	list := make([]seed.Channel, len(chans))
	for i, c := range chans {
		list[i] = seed.Channel{Channel: c, ChannelID: ds.content[c]}
	}
	id, err := ds.s.Message(context.Background(), "Faults "+strings.Join(chans, "+"), list...)
	if err != nil {
		ds.t.Fatalf("seed message: %v", err)
	}
	return id
}

// contacts writes contacts from..to (inclusive, explicit ids) with the
// addresses r(id) gives, in multi-row inserts.
func (ds *dataset) contacts(from, to int64, r func(id int64) reach) {
	ds.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	leads := newBulk(ds.db.T("leads"), "id", "is_published", "date_added", "date_modified", "points", "firstname", "email", "mobile", "twitter")
	var pushed []int64
	for id := from; id <= to; id++ {
		c := r(id)
		var email, mobile, twitter any
		if c.email {
			email = emailOf(id)
		}
		if c.mobile {
			mobile = mobileOf(id)
		}
		if c.twitter {
			twitter = handleOf(id)
		}
		leads.add(ds.t, ds.db, id, 1, now, now, 0, "Contact"+strconv.FormatInt(id, 10), email, mobile, twitter)
		if c.push {
			pushed = append(pushed, id)
		}
	}
	leads.flush(ds.t, ds.db)
	push := newBulk(ds.db.T("push_ids"), "push_id", "lead_id", "enabled", "mobile")
	for _, id := range pushed {
		push.add(ds.t, ds.db, playerOf(id), id, 1, 0)
	}
	push.flush(ds.t, ds.db)
}

// limit gives contacts from..to a frequency rule on channel.
func (ds *dataset) limit(from, to int64, channel string, number int, unit string) {
	ds.t.Helper()
	rules := newBulk(ds.db.T("lead_frequencyrules"), "lead_id", "date_added", "frequency_number", "frequency_time", "channel", "preferred_channel")
	now := time.Now().UTC()
	for id := from; id <= to; id++ {
		rules.add(ds.t, ds.db, id, now, number, unit, channel, 0)
	}
	rules.flush(ds.t, ds.db)
}

// form is the body Mautic's "Send a webhook" action posts for a contact.
func (ds *dataset) form(contact, message, event int64, key string) url.Values {
	v := url.Values{"contact_id": {strconv.FormatInt(contact, 10)}, "message_id": {strconv.FormatInt(message, 10)},
		"campaign_id": {strconv.FormatInt(ds.campaignID, 10)}, "event_id": {strconv.FormatInt(event, 10)}}
	if key != "" {
		v.Set("idempotency_key", key)
	}
	return v
}

// bulk writes rows of one table in multi-row INSERTs of 500, failing the
// test on an error.
type bulk struct{ *seed.Bulk }

func newBulk(table string, cols ...string) bulk { return bulk{seed.NewBulk(table, cols, 500)} }

func (b bulk) add(t testing.TB, db *testdb.DB, vals ...any) {
	t.Helper()
	require.NoError(t, b.Add(context.Background(), db, vals...))
}

func (b bulk) flush(t testing.TB, db *testdb.DB) {
	t.Helper()
	require.NoError(t, b.Flush(context.Background(), db))
}

// dispatchRow is a sidecar_dispatches row as the checks need it.
type dispatchRow struct {
	ID        int64          `db:"id"`
	State     string         `db:"state"`
	ContactID int64          `db:"contact_id"`
	Channel   sql.NullString `db:"channel"`
	Attempts  int            `db:"attempts"`
	Key       sql.NullString `db:"idempotency_key"`
	Trace     string         `db:"trace"`
}

// dispatches reads every dispatch.
func dispatches(t testing.TB, db *testdb.DB) map[int64]dispatchRow {
	t.Helper()
	var rows []dispatchRow
	if err := db.Select(&rows, "SELECT id, state, contact_id, channel, attempts, idempotency_key, trace FROM "+db.T("sidecar_dispatches")); err != nil {
		t.Fatalf("read dispatches: %v", err)
	}
	out := make(map[int64]dispatchRow, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// pending counts the dispatches not in a terminal state yet.
func pending(t testing.TB, db *testdb.DB) int {
	t.Helper()
	return db.Count(t, "sidecar_dispatches", "state = 'accepted'")
}

// leasedIDs returns the dispatches a worker has claimed and not written
// yet (a live or dead lease).
func leasedIDs(t testing.TB, db *testdb.DB) map[int64]bool {
	t.Helper()
	var ids []int64
	if err := db.Select(&ids, "SELECT id FROM "+db.T("sidecar_dispatches")+" WHERE state = 'accepted' AND lease_owner IS NOT NULL"); err != nil {
		t.Fatalf("read leases: %v", err)
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// statsRows counts the stats rows Mautic's reports see, per channel.
func statsRows(t testing.TB, db *testdb.DB) map[string]int {
	t.Helper()
	return map[string]int{
		"email":        db.Count(t, "email_stats", ""),
		"sms":          db.Count(t, "sms_message_stats", "is_failed = 0"),
		"notification": db.Count(t, "push_notification_stats", ""),
		"tweet":        db.Count(t, "tweet_stats", ""),
		"hook":         db.Count(t, "sidecar_sends", "channel = 'hook'"),
		"fallback":     db.Count(t, "sidecar_sends", "channel = 'fallback'"),
	}
}

// events writes n more campaigns with one event each and returns the
// event ids (message_queue.event_id references them).
func (ds *dataset) events(n int) []int64 {
	ds.t.Helper()
	out := make([]int64, n)
	for i := range out {
		_, ev, err := ds.s.Campaign(context.Background(), fmt.Sprintf("Faults %d", i))
		if err != nil {
			ds.t.Fatalf("seed campaign: %v", err)
		}
		out[i] = ev
	}
	return out
}

// contactStory describes what happened to one contact, for a failure
// message: its dispatches with their traces, and its stats rows.
func contactStory(t testing.TB, db *testdb.DB, contactID int64) string {
	t.Helper()
	var b strings.Builder
	var rows []struct {
		ID      int64          `db:"id"`
		State   string         `db:"state"`
		Channel sql.NullString `db:"channel"`
		Updated time.Time      `db:"updated_at"`
		Trace   string         `db:"trace"`
	}
	if err := db.Select(&rows, "SELECT id, state, channel, updated_at, trace FROM "+db.T("sidecar_dispatches")+" WHERE contact_id = ? ORDER BY updated_at, id", contactID); err != nil {
		return err.Error()
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  dispatch %d %s/%s at %s: %s", r.ID, r.State, r.Channel.String, r.Updated.Format("15:04:05.000000"), r.Trace)
	}
	for _, table := range []string{"email_stats", "sms_message_stats"} {
		var sent []time.Time
		if err := db.Select(&sent, "SELECT date_sent FROM "+db.T(table)+" WHERE lead_id = ? ORDER BY date_sent", contactID); err != nil {
			return err.Error()
		}
		for _, s := range sent {
			fmt.Fprintf(&b, "\n  %s row sent %s", table, s.Format("15:04:05.000000"))
		}
	}
	return b.String()
}
