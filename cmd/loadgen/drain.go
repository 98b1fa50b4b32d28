package main

import (
	"context"
	"fmt"
	"time"
)

// drainResult is how fast the sidecar emptied a backlog.
type drainResult struct {
	// Start is the backlog when the sidecar answered /readyz; work done
	// before that moment (the workers start a little earlier) is neither
	// counted nor timed.
	Start    int64   `json:"start"`
	Done     int64   `json:"done"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"per_second"`
	Complete bool    `json:"complete"`
	// Left is what remained at the end: waiting for a retry or unfinished.
	Left   int64  `json:"left"`
	Reason string `json:"reason,omitempty"` // why the wait ended early
	// Timeline is the backlog about every second, for a look at ramp-up
	// and tail.
	Timeline []int64 `json:"timeline"`
}

// backlogCounter returns the work left and how much of it is due now.
type backlogCounter func(ctx context.Context, now time.Time) (left, due int64, err error)

// drain polls count until nothing is left, then reports the rate. It polls
// every poll, and every 20 ms once the end is near, so the end is timed
// closely. It gives up when the backlog stops moving (10 seconds with
// nothing due: what is left waits for a retry; a minute otherwise), after
// timeout, or when the sidecar exits.
func drain(ctx context.Context, p *sidecarProc, count backlogCounter, poll, timeout time.Duration, prog *progress) (drainResult, error) {
	var r drainResult
	t0 := time.Now()
	left, due, err := count(ctx, t0.UTC())
	if err != nil {
		return r, err
	}
	r.Start = left
	lastChange, lastLeft := t0, left
	nextMark := t0.Add(time.Second)
	r.Timeline = append(r.Timeline, left)
	end := t0
	for left > 0 {
		wait := poll
		if elapsed := time.Since(t0); elapsed > 0 && r.Start > left {
			rate := float64(r.Start-left) / elapsed.Seconds()
			if eta := time.Duration(float64(left) / rate * float64(time.Second)); eta < 2*poll {
				wait = 20 * time.Millisecond
			}
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-p.exited:
			return r, fmt.Errorf("%w (%v):\n%s", errSidecarDied, p.waitErr, tail(p.logPath, 20))
		case <-time.After(wait):
		}
		now := time.Now()
		if left, due, err = count(ctx, now.UTC()); err != nil {
			return r, err
		}
		end = now
		prog.update(r.Start - left)
		for !now.Before(nextMark) {
			r.Timeline = append(r.Timeline, left)
			nextMark = nextMark.Add(time.Second)
		}
		if left != lastLeft {
			lastChange, lastLeft = now, left
		}
		// Work in flight is not due either (claimed under a lease), so only a
		// backlog that stopped moving counts as waiting.
		if still := now.Sub(lastChange); (due == 0 && still > 10*time.Second) || still > time.Minute {
			r.Reason = fmt.Sprintf("%d left, %d of them due, unchanged for %s", left, due, still.Round(time.Second))
			end = lastChange
			break
		}
		if now.Sub(t0) > timeout {
			r.Reason = fmt.Sprintf("not done after %s (--phase-timeout)", timeout)
			break
		}
	}
	prog.finish()
	r.Left = left
	r.Done = r.Start - left
	r.Complete = left == 0
	r.Seconds = end.Sub(t0).Seconds()
	if r.Seconds > 0 {
		r.Rate = float64(r.Done) / r.Seconds
	}
	return r, nil
}

// dispatchCounter counts accepted dispatches, and those due at now.
func dispatchCounter(b *benchDB) backlogCounter {
	q := loadgenTag + "SELECT COUNT(*), COALESCE(SUM(run_at <= ?), 0) FROM " + b.T("sidecar_dispatches") + " WHERE state = 'accepted'"
	return func(ctx context.Context, now time.Time) (int64, int64, error) {
		var left, due int64
		if err := b.DB.QueryRowxContext(ctx, q, now).Scan(&left, &due); err != nil {
			return 0, 0, fmt.Errorf("count backlog: %w", err)
		}
		return left, due, nil
	}
}

// queueCounter counts due message_queue rows of the sandbox's channels
// (left and due are the same: a row rescheduled to later is done for this
// phase).
func queueCounter(b *benchDB) backlogCounter {
	q := loadgenTag + "SELECT COUNT(*) FROM " + b.T("message_queue") + " WHERE success = 0 AND attempts < max_attempts AND scheduled_date <= ?" +
		" AND channel IN ('email', 'sms', 'notification')"
	return func(ctx context.Context, now time.Time) (int64, int64, error) {
		var due int64
		if err := b.DB.QueryRowxContext(ctx, q, now).Scan(&due); err != nil {
			return 0, 0, fmt.Errorf("count due queue rows: %w", err)
		}
		return due, due, nil
	}
}

// drained is what a routing phase's sidecar did: the drain, its stop, and
// the deliveries the providers saw meanwhile.
type drained struct {
	Drain     drainResult
	Sidecar   stopResult
	Delivered map[string]int
}

// drainWith starts a sidecar for a phase (name, extra environment), waits
// until count reports the work done (total units, for the progress line
// label), and stops it. The stop's result is kept even when the drain
// failed.
func (r *runner) drainWith(ctx context.Context, name string, env map[string]string, count backlogCounter, label string, total int64, unit string) (drained, error) {
	var d drained
	before := r.prov.delivered()
	p, err := r.launch.start(ctx, name, env)
	if err != nil {
		return d, err
	}
	d.Drain, err = drain(ctx, p, count, r.cfg.Poll, r.cfg.PhaseTimeout, newProgress(r.stderr, label, total, unit))
	stop, serr := p.stop(stopTimeout)
	d.Sidecar = stop
	if err != nil {
		return d, err
	}
	if serr != nil {
		return d, serr
	}
	d.Delivered = deltas(before, r.prov.delivered())
	return d, nil
}
