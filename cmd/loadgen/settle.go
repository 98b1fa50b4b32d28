package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// settleResult is how long loadgen waited for InnoDB's purge before a
// measurement.
type settleResult struct {
	Before  int64   `json:"history_before"`
	After   int64   `json:"history_after"`
	Seconds float64 `json:"seconds"`
}

// String says how the wait went.
func (s settleResult) String() string {
	if s.Before < 0 {
		return "InnoDB history list length unknown: no wait for purge"
	}
	if s.Seconds < 0.1 {
		return fmt.Sprintf("InnoDB history list length %d at the start", s.Before)
	}
	return fmt.Sprintf("waited %.1fs for InnoDB purge: history list length %d → %d", s.Seconds, s.Before, s.After)
}

// Bounds of the wait for purge.
const (
	settleHistory = 2000             // history list length considered settled
	settleMax     = 3 * time.Minute  // longest wait
	settleStall   = 15 * time.Second // give up when the length stops falling for this long
)

// historyLength returns InnoDB's purge backlog (the history list length):
// undo records of committed changes not purged yet. Until purge catches up,
// the delete-marked index entries of rows deleted or moved by an earlier
// phase (for example every dispatch leaving state 'accepted') stay in the
// indexes, and every scan of those index ranges walks over them.
func historyLength(ctx context.Context, b *benchDB) (int64, error) {
	var n int64
	err := b.DB.QueryRowxContext(ctx, loadgenTag+"SELECT `COUNT` FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("innodb history length: %w", err)
	}
	return n, nil
}

// settle waits until purge has caught up with what earlier phases wrote, so
// that a phase does not pay for the previous one's dead index entries: until
// the history list is short, for at most settleMax, and not longer than
// settleStall without progress (other clients of a shared server keep it
// from shrinking).
func settle(ctx context.Context, b *benchDB, w io.Writer) settleResult {
	start := time.Now()
	n, err := historyLength(ctx, b)
	if err != nil {
		return settleResult{Before: -1, After: -1}
	}
	r := settleResult{Before: n, After: n}
	best, bestAt := n, start
	announced := false
	for n > settleHistory && time.Since(start) < settleMax && time.Since(bestAt) < settleStall {
		if !announced {
			fmt.Fprintf(w, "waiting for InnoDB purge (history list length %d)\n", n)
			announced = true
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(500 * time.Millisecond):
		}
		if n, err = historyLength(ctx, b); err != nil {
			break
		}
		r.After = n
		if n < best {
			best, bestAt = n, time.Now()
		}
	}
	r.Seconds = time.Since(start).Seconds()
	if announced {
		fmt.Fprintf(w, "purge: history list length %d after %.1fs\n", r.After, r.Seconds)
	}
	return r
}
