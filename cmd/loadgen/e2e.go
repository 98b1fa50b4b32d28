package main

import (
	"context"
	"fmt"
	"time"
)

// e2ePhase is the end-to-end measurement: a backlog of accepted dispatches
// routed and sent through the loopback providers.
type e2ePhase struct {
	Cleared       int64          `json:"cleared_earlier_backlog"`
	Backlog       int            `json:"backlog"`
	BacklogSource string         `json:"backlog_source"`
	InsertSeconds float64        `json:"backlog_insert_seconds"`
	Settle        settleResult   `json:"settle"`
	Drain         drainResult    `json:"drain"`
	Outcomes      []outcome      `json:"outcomes"`
	Delivered     map[string]int `json:"delivered"` // by the providers during the phase
	Sidecar       stopResult     `json:"sidecar"`
}

// runE2E routes a backlog of one accepted dispatch per contact, for --e2e
// contacts spread over the dataset: the one the intake phase left when it
// took exactly that in, else one written directly (as the intake would). It starts the sidecar with its workers
// and times accepted → sent/queued/failed by polling the dispatch states.
func (r *runner) runE2E(ctx context.Context) (*e2ePhase, error) {
	ph := &e2ePhase{Backlog: r.cfg.E2E}
	lo, hi, reused, err := intakeBacklog(ctx, r.db, r.cfg.E2E)
	if err != nil {
		return nil, err
	}
	if reused {
		ph.BacklogSource = "left by the intake phase: one accepted dispatch per contact"
	} else {
		ph.BacklogSource = "written directly: one accepted dispatch per contact with an idempotency key, rows as the intake writes them"
		if ph.Cleared, err = clearBacklog(ctx, r.db); err != nil {
			return nil, err
		}
		prog := newProgress(r.stderr, "e2e backlog", int64(ph.Backlog), "dispatches")
		start := time.Now()
		if lo, hi, err = insertBacklog(ctx, r.db, r.ds, ph.Backlog, r.runID+"-e2e-", prog); err != nil {
			return nil, err
		}
		ph.InsertSeconds = time.Since(start).Seconds()
	}
	ph.Settle = settle(ctx, r.db, r.stderr)
	d, err := r.drainWith(ctx, "e2e", nil, dispatchCounter(r.db), "e2e routing", int64(ph.Backlog), "dispatches")
	ph.Drain, ph.Sidecar, ph.Delivered = d.Drain, d.Sidecar, d.Delivered
	if err != nil {
		return ph, err
	}
	if ph.Outcomes, err = dispatchOutcomes(ctx, r.db, lo, hi); err != nil {
		return ph, err
	}
	return ph, nil
}

// intakeBacklog reports whether the accepted dispatches are exactly one per
// contact (what the intake phase leaves with --intake = --contacts), and
// their id range.
func intakeBacklog(ctx context.Context, b *benchDB, contacts int) (lo, hi int64, ok bool, err error) {
	var n, distinct int
	if err := b.DB.QueryRowxContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT contact_id), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM "+
		b.T("sidecar_dispatches")+" WHERE state = 'accepted'").Scan(&n, &distinct, &lo, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("inspect backlog: %w", err)
	}
	return lo, hi, n == contacts && distinct == contacts, nil
}

// routed is the number of dispatches the sidecar finished over its whole
// life (the drain counts only those after /readyz answered).
func (ph *e2ePhase) routed() int64 { return int64(ph.Backlog) - ph.Drain.Left }

// deltas returns after − before per key.
func deltas(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// outcomeLine prints outcomes as "sent/email 123, failed(dnc) 4".
func outcomeLine(os []outcome) string {
	s := ""
	for _, o := range os {
		if s != "" {
			s += ", "
		}
		switch {
		case o.Reason != "":
			s += fmt.Sprintf("%s(%s) %d", o.State, o.Reason, o.Count)
		case o.Channel != "":
			s += fmt.Sprintf("%s/%s %d", o.State, o.Channel, o.Count)
		default:
			s += fmt.Sprintf("%s %d", o.State, o.Count)
		}
	}
	return s
}
