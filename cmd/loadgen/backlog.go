package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/store"
)

// clearBacklog deletes the accepted dispatches earlier phases left, so a
// phase routes only its own backlog. It returns how many there were.
func clearBacklog(ctx context.Context, b *benchDB) (int64, error) {
	res, err := b.DB.ExecContext(ctx, "DELETE FROM "+b.T("sidecar_dispatches")+" WHERE state = ?", store.Accepted)
	if err != nil {
		return 0, fmt.Errorf("clear backlog: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// insertBacklog writes n accepted dispatches, dispatch i for contact
// i mod contacts + 1, exactly as the intake records a request with an
// idempotency key (a sidecar_dispatches row and its sidecar_dispatch_keys
// row, ids reserved from sidecar_sequences), in multi-row statements. It
// returns the range of the new ids.
func insertBacklog(ctx context.Context, b *benchDB, ds *dataset, n int, keyPrefix string, prog *progress) (lo, hi int64, err error) {
	if n == 0 {
		return 0, -1, nil
	}
	res, err := b.DB.ExecContext(ctx, "UPDATE "+b.T("sidecar_sequences")+" SET next_id = LAST_INSERT_ID(next_id + ?) WHERE name = 'dispatch'", n)
	if err != nil {
		return 0, 0, fmt.Errorf("reserve dispatch ids: %w", err)
	}
	end, err := res.LastInsertId()
	if err != nil {
		return 0, 0, fmt.Errorf("reserve dispatch ids: %w", err)
	}
	lo, hi = end-int64(n), end-1
	now := time.Now().UTC()
	tx, err := b.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("insert backlog: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	disp := seed.NewBulk(b.T("sidecar_dispatches"), []string{"id", "state", "contact_id", "message_id", "campaign_id", "event_id",
		"idempotency_key", "attempts", "trace", "run_at", "created_at", "updated_at"}, bulkRows)
	keys := seed.NewBulk(b.T("sidecar_dispatch_keys"), []string{"dedup_key", "dispatch_id", "created_at"}, bulkRows)
	for i := 0; i < n; i++ {
		id := lo + int64(i)
		contact := spread(i, n, ds.Contacts)
		key := keyPrefix + strconv.Itoa(i)
		if err := disp.Add(ctx, tx, id, store.Accepted, contact, ds.MessageID, ds.CampaignID, ds.EventID, key, 0, "[]", now, now, now); err != nil {
			return 0, 0, err
		}
		k := store.KeyFor(key, 0, 0, 0, 0)
		if err := keys.Add(ctx, tx, k[:], id, now); err != nil {
			return 0, 0, err
		}
		if i%bulkRows == 0 {
			prog.update(int64(i))
		}
	}
	if err := disp.Flush(ctx, tx); err != nil {
		return 0, 0, err
	}
	if err := keys.Flush(ctx, tx); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("insert backlog: %w", err)
	}
	prog.update(int64(n))
	prog.finish()
	return lo, hi, nil
}

// outcome counts dispatches (or queue rows) by state and channel.
type outcome struct {
	State   string `json:"state"`
	Channel string `json:"channel"`
	Reason  string `json:"reason,omitempty"` // of the last trace entry, for failed dispatches
	Count   int64  `json:"count"`
}

// dispatchOutcomes counts the dispatches with ids in [lo, hi] by state and
// channel, and the failed ones by the reason of their last trace entry.
func dispatchOutcomes(ctx context.Context, b *benchDB, lo, hi int64) ([]outcome, error) {
	var out []outcome
	rows, err := b.DB.QueryxContext(ctx, "SELECT state, COALESCE(channel, ''), COUNT(*) FROM "+b.T("sidecar_dispatches")+
		" WHERE id BETWEEN ? AND ? GROUP BY state, channel ORDER BY state, channel", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("dispatch outcomes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o outcome
		if err := rows.Scan(&o.State, &o.Channel, &o.Count); err != nil {
			return nil, fmt.Errorf("dispatch outcomes: %w", err)
		}
		if o.State != store.Failed {
			out = append(out, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dispatch outcomes: %w", err)
	}
	// Failed dispatches by why the last channel was given up.
	frows, err := b.DB.QueryxContext(ctx, "SELECT COALESCE(JSON_VALUE(trace, '$[last].reason'), ''), COUNT(*) FROM "+
		b.T("sidecar_dispatches")+" WHERE id BETWEEN ? AND ? AND state = ? GROUP BY 1 ORDER BY 1", lo, hi, store.Failed)
	if err != nil {
		return nil, fmt.Errorf("failed dispatch reasons: %w", err)
	}
	defer frows.Close()
	for frows.Next() {
		o := outcome{State: store.Failed}
		if err := frows.Scan(&o.Reason, &o.Count); err != nil {
			return nil, fmt.Errorf("failed dispatch reasons: %w", err)
		}
		out = append(out, o)
	}
	return out, frows.Err()
}

// deliveryCheck compares what the providers accepted during a phase with
// the sends the database recorded (outcomes in state "sent", by channel)
// and describes any difference: more deliveries than recorded sends are
// duplicate sends.
func deliveryCheck(phase string, delivered map[string]int, outcomes []outcome) []string {
	sent := map[string]int64{}
	for _, o := range outcomes {
		if o.State == "sent" {
			sent[o.Channel] += o.Count
		}
	}
	var out []string
	for _, ch := range []string{"email", "sms", "notification"} {
		d, s := int64(delivered[ch]), sent[ch]
		switch {
		case d > s:
			out = append(out, fmt.Sprintf("%s: the %s provider accepted %d messages but %d sends were recorded: %d duplicate sends",
				phase, ch, d, s, d-s))
		case d < s:
			out = append(out, fmt.Sprintf("%s: %d %s sends were recorded but the provider accepted only %d messages", phase, s, ch, d))
		}
	}
	return out
}

// spread is the contact of the i-th of n dispatches: one per contact,
// spread evenly over the dataset's contacts when there are fewer
// dispatches than contacts (so a big dataset is sampled whole, not only
// its first contacts), else cycling through them.
func spread(i, n, contacts int) int64 {
	if n < contacts {
		return int64(i)*int64(contacts)/int64(n) + 1
	}
	return int64(i%contacts) + 1
}
