package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mautic-mm/sidecar/internal/plans"
	"github.com/mautic-mm/sidecar/mautic"
)

// plansPhase is the EXPLAIN survey of the hot reads.
type plansPhase struct {
	Batch    int              `json:"batch"`
	Fixtures map[string]int64 `json:"fixtures"` // rows the phase added before the survey
	Settle   settleResult     `json:"settle"`
	Plans    []plans.Plan     `json:"plans"`
	Problems []string         `json:"problems,omitempty"`
	Seconds  float64          `json:"seconds"`
}

// plansBatch is the routing batch surveyed without --batch: the sidecar's
// default SIDECAR_BATCH_SIZE.
const plansBatch = 128

// runPlans gives the database the history a sidecar leaves (routed and
// failed dispatches next to a due backlog, a drained message_queue with a
// few pending rows, contact lock rows, ended queue leases, email copies)
// and primary companies, then runs the hot reads of a batch through
// plans.Survey and explains them. The rows it adds stay.
func (r *runner) runPlans(ctx context.Context) (*plansPhase, error) {
	start := time.Now()
	ph := &plansPhase{Batch: plansBatch, Fixtures: map[string]int64{}}
	if r.cfg.Batch.Given && r.cfg.Batch.V > 0 {
		ph.Batch = r.cfg.Batch.V
	}
	if err := r.planFixtures(ctx, ph); err != nil {
		return nil, err
	}
	// Dead index entries left by earlier phases would inflate estimates.
	ph.Settle = settle(ctx, r.db, r.stderr)
	b := plans.Batch{
		MessageID: r.ds.MessageID,
		Content:   r.ds.Content,
		EventID:   r.ds.EventID,
		// Global defaults on every channel: the frequency reads then count
		// the sends of every contact of the batch, not only of those with
		// a rule of their own.
		Defaults: map[string]mautic.Limit{"email": {Number: 5, Unit: mautic.Week}, "sms": {Number: 3, Unit: mautic.Week},
			"notification": {Number: 3, Unit: mautic.Day}},
		Now: time.Now().UTC(),
	}
	// Contacts spread over the dataset, as a backlog mixes them.
	step := max(int64(r.ds.Contacts/ph.Batch), 1)
	for id := int64(1); id <= int64(r.ds.Contacts) && len(b.ContactIDs) < ph.Batch; id += step {
		b.ContactIDs = append(b.ContactIDs, id)
	}
	err := r.db.DB.GetContext(ctx, &b.SMSHash, "SELECT tracking_hash FROM "+r.db.T("sms_message_stats")+" ORDER BY id LIMIT 1")
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("plans: %w", err)
	}
	fmt.Fprintf(r.stderr, "plans: surveying a batch of %d contacts\n", len(b.ContactIDs))
	// The sidecar's own connection settings: they decide how arguments
	// are bound, and so the plans.
	mdb, err := mautic.Open(ctx, mautic.Config{DSN: r.db.DSN, Prefix: r.db.Prefix, MaxOpenConns: 4})
	if err != nil {
		return nil, err
	}
	defer mdb.Close()
	// The email's copy exists after its first send.
	emails, err := mdb.Emails(ctx, mdb, []int64{r.ds.Content["email"]})
	if err != nil {
		return nil, err
	}
	for _, e := range emails {
		if err := mdb.InsertEmailCopies(ctx, mdb, []mautic.EmailCopy{{ID: mautic.EmailCopyID(e.Subject, e.CustomHTML), Created: b.Now,
			Subject: e.Subject, Body: e.CustomHTML, BodyText: e.PlainText}}); err != nil {
			return nil, err
		}
	}
	ph.Plans, err = plans.Run(ctx, plans.Target{DB: mdb.DB, DSN: r.db.DSN, Prefix: r.db.Prefix}, b, plans.DefaultBigTable)
	if err != nil {
		return nil, err
	}
	ph.Problems = plans.Problems(ph.Plans)
	ph.Seconds = time.Since(start).Seconds()
	return ph, nil
}

// planFixtures writes the history rows, in bulk, and analyzes the tables.
func (r *runner) planFixtures(ctx context.Context, ph *plansPhase) error {
	b, ds := r.db, r.ds
	now := time.Now().UTC().Truncate(time.Second)
	exec := func(what, query string, args ...any) error {
		res, err := b.DB.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("plans: %s: %w", what, err)
		}
		n, _ := res.RowsAffected()
		ph.Fixtures[what] += n
		return nil
	}

	// The rows are written in their final state: rows updated in bulk
	// leave delete-marked index entries until purge removes them, and the
	// optimizer's estimates would count those.
	//
	// One dispatch per contact over the last week (its dedup key with it):
	// 89% sent, 10% still accepted and due, 1% failed.
	n := int64(ds.Contacts)
	res, err := b.DB.ExecContext(ctx, "UPDATE "+b.T("sidecar_sequences")+" SET next_id = LAST_INSERT_ID(next_id + ?) WHERE name = 'dispatch'", n)
	if err != nil {
		return fmt.Errorf("plans: reserve dispatch ids: %w", err)
	}
	end, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("plans: reserve dispatch ids: %w", err)
	}
	base := end - n - 1 // dispatch of contact c: base + c
	when := "? - INTERVAL ((? - id) * 604800 DIV ?) SECOND"
	if err := exec("sidecar_dispatches", "INSERT INTO "+b.T("sidecar_dispatches")+" (id, state, contact_id, message_id, campaign_id, event_id,"+
		" channel, channel_id, attempts, trace, run_at, created_at, updated_at)"+
		" SELECT ? + id, CASE WHEN id % 100 = 0 THEN 'failed' WHEN id % 10 = 0 THEN 'accepted' ELSE 'sent' END, id, ?, ?, ?,"+
		" IF(id % 10 = 0, NULL, 'email'), IF(id % 10 = 0, NULL, ?), IF(id % 10 = 0, 0, 1), '[]', "+when+", "+when+", "+when+
		" FROM "+b.T("leads")+" WHERE id <= ?", base, ds.MessageID, ds.CampaignID, ds.EventID, ds.Content["email"],
		now, n, n, now, n, n, now, n, n, n); err != nil {
		return err
	}
	if err := exec("sidecar_dispatch_keys", "INSERT INTO "+b.T("sidecar_dispatch_keys")+" (dedup_key, dispatch_id, created_at)"+
		" SELECT UNHEX(SHA2(CONCAT(?, id), 256)), ? + id, "+when+" FROM "+b.T("leads")+" WHERE id <= ?",
		"plans-"+r.runID+"-", base, now, n, n, n); err != nil {
		return err
	}
	// A drained message_queue: up to --queue-rows rows sent over the last
	// 30 days (one per contact), and 2% as many pending, due in the last
	// hour (a drained queue keeps few; while Mautic queues a burst, the
	// share is higher, and the optimizer may then rightly prefer to scan
	// the table for the pending rows).
	var watermark int64
	if err := b.DB.GetContext(ctx, &watermark, "SELECT COALESCE(MAX(id), 0) FROM "+b.T("message_queue")); err != nil {
		return fmt.Errorf("plans: %w", err)
	}
	sent := "? - INTERVAL (id % 30) DAY - INTERVAL 1 HOUR"
	if err := exec("message_queue sent", "INSERT INTO "+b.T("message_queue")+" (channel, channel_id, event_id, lead_id, priority,"+
		" max_attempts, attempts, success, status, date_published, scheduled_date, last_attempt, date_sent, options)"+
		" SELECT IF(id % 3 = 0, 'sms', 'email'), IF(id % 3 = 0, ?, ?), ?, id, 2, 3, 1, 1, 'sent', "+sent+", "+sent+", "+sent+", "+sent+
		", 'a:1:{i:0;a:0:{}}' FROM "+b.T("leads")+" WHERE id <= ?", ds.Content["sms"], ds.Content["email"], ds.EventID,
		now, now, now, now, r.cfg.QueueRows); err != nil {
		return err
	}
	pending := max(r.cfg.QueueRows/50, 1)
	if err := insertQueueRows(ctx, b, ds, pending, newProgress(r.stderr, "plans: pending queue rows", int64(pending), "rows")); err != nil {
		return err
	}
	ph.Fixtures["message_queue pending"] = int64(pending)
	// Queue leases ended but not purged yet (the upkeep purges those
	// that ended a minute ago).
	if err := exec("sidecar_queue_leases", "INSERT IGNORE INTO "+b.T("sidecar_queue_leases")+" (queue_id, owner, until)"+
		" SELECT id, UNHEX(MD5(id)), ? - INTERVAL 30 SECOND FROM "+b.T("message_queue")+" WHERE id > ? AND success = 1"+
		" ORDER BY id DESC LIMIT 2000", now, watermark); err != nil {
		return err
	}
	// A lock row per contact ever routed.
	if err := exec("sidecar_contact_locks", "INSERT IGNORE INTO "+b.T("sidecar_contact_locks")+" (contact_id, owner, until)"+
		" SELECT id, NULL, NULL FROM "+b.T("leads"), nil...); err != nil {
		return err
	}
	// Old email copies.
	if err := exec("email_copies", "INSERT IGNORE INTO "+b.T("email_copies")+" (id, date_created, subject)"+
		" SELECT LEFT(MD5(CONCAT('plans', id)), 32), ?, 'an older email' FROM "+b.T("leads")+" WHERE id <= 2000", now); err != nil {
		return err
	}
	// Up to 1000 companies, the primary company of a third of the contacts.
	var cbase int64
	if err := b.DB.GetContext(ctx, &cbase, "SELECT COALESCE(MAX(id), 0) FROM "+b.T("companies")); err != nil {
		return fmt.Errorf("plans: %w", err)
	}
	companies := min(n, 1000)
	if err := exec("companies", "INSERT INTO "+b.T("companies")+" (id, is_published, date_added, companyname, score)"+
		" SELECT ? + id, 1, ?, CONCAT('Company ', id), 0 FROM "+b.T("leads")+" WHERE id <= ?", cbase, now, companies); err != nil {
		return err
	}
	if err := exec("companies_leads", "INSERT IGNORE INTO "+b.T("companies_leads")+" (company_id, lead_id, date_added, is_primary)"+
		" SELECT ? + id % ? + 1, id, ?, 1 FROM "+b.T("leads")+" WHERE id % 3 = 0", cbase, companies, now); err != nil {
		return err
	}
	for _, t := range []string{"sidecar_dispatches", "sidecar_dispatch_keys", "message_queue", "sidecar_queue_leases", "sidecar_contact_locks",
		"email_copies", "companies", "companies_leads"} {
		if _, err := b.DB.ExecContext(ctx, "ANALYZE TABLE "+b.T(t)); err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return nil
}
