package main

import (
	"context"
	"fmt"
	"time"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
)

// queuePhase is the message_queue measurement.
type queuePhase struct {
	Rows          int            `json:"rows"`
	InsertSeconds float64        `json:"insert_seconds"`
	Settle        settleResult   `json:"settle"`
	Drain         drainResult    `json:"drain"`
	Outcomes      []outcome      `json:"outcomes"` // state = message_queue.status
	Delivered     map[string]int `json:"delivered"`
	Sidecar       stopResult     `json:"sidecar"`
}

// runQueue inserts due message_queue rows the way Mautic queues them and
// times the sidecar's queue worker until none is due.
func (r *runner) runQueue(ctx context.Context) (*queuePhase, error) {
	ph := &queuePhase{Rows: r.cfg.QueueRows}
	// Only the queue is to be worked on.
	if _, err := clearBacklog(ctx, r.db); err != nil {
		return nil, err
	}
	var watermark int64
	if err := r.db.DB.GetContext(ctx, &watermark, "SELECT COALESCE(MAX(id), 0) FROM "+r.db.T("message_queue")); err != nil {
		return nil, fmt.Errorf("queue phase: %w", err)
	}
	start := time.Now()
	if err := insertQueueRows(ctx, r.db, r.ds, ph.Rows, newProgress(r.stderr, "queue rows", int64(ph.Rows), "rows")); err != nil {
		return nil, err
	}
	ph.InsertSeconds = time.Since(start).Seconds()
	ph.Settle = settle(ctx, r.db, r.stderr)
	d, err := r.drainWith(ctx, "queue", map[string]string{"SIDECAR_QUEUE": "sidecar"}, queueCounter(r.db),
		"queue draining", int64(ph.Rows), "rows")
	ph.Drain, ph.Sidecar, ph.Delivered = d.Drain, d.Sidecar, d.Delivered
	if err != nil {
		return ph, err
	}
	rows, err := r.db.DB.QueryxContext(ctx, "SELECT status, channel, COUNT(*) FROM "+r.db.T("message_queue")+
		" WHERE id > ? GROUP BY status, channel ORDER BY status, channel", watermark)
	if err != nil {
		return ph, fmt.Errorf("queue outcomes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o outcome
		if err := rows.Scan(&o.State, &o.Channel, &o.Count); err != nil {
			return ph, fmt.Errorf("queue outcomes: %w", err)
		}
		ph.Outcomes = append(ph.Outcomes, o)
	}
	return ph, rows.Err()
}

// insertQueueRows writes n due rows with the values Mautic writes when it
// queues a send (mautic.Enqueue): priority 2, max_attempts 3, attempts 0,
// success 0, status pending, options a:1:{i:0;a:0:{}}, the campaign
// event, and a scheduled_date in the last hour. Row i is for contact
// i mod contacts + 1, on a channel the contact has an address for when it
// has one (queueChannel).
func insertQueueRows(ctx context.Context, b *benchDB, ds *dataset, n int, prog *progress) error {
	now := time.Now().UTC().Truncate(time.Second)
	tx, err := b.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert queue rows: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	ins := seed.NewBulk(b.T("message_queue"), []string{"channel", "channel_id", "event_id", "lead_id", "priority", "max_attempts", "attempts",
		"success", "status", "date_published", "scheduled_date", "last_attempt", "date_sent", "options"}, bulkRows)
	for i := 0; i < n; i++ {
		contact := int64(i%ds.Contacts) + 1
		ch := queueChannel(makeProfile(ds.Seed, contact), i/ds.Contacts)
		scheduled := now.Add(-time.Hour + time.Duration(i%3600)*time.Second)
		if err := ins.Add(ctx, tx, ch, ds.Content[ch], ds.EventID, contact, 2, 3, 0, 0, mautic.QueuePending,
			scheduled.Add(-time.Hour), scheduled, nil, nil, "a:1:{i:0;a:0:{}}"); err != nil {
			return err
		}
		if i%bulkRows == 0 {
			prog.update(int64(i))
		}
	}
	if err := ins.Flush(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert queue rows: %w", err)
	}
	prog.update(int64(n))
	prog.finish()
	return nil
}
