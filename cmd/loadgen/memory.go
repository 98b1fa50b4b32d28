package main

import (
	"context"
)

// memoryPhase measures the sidecar's resident memory with a large backlog:
// while it takes the backlog in (intake only), then while it routes it.
type memoryPhase struct {
	Backlog       int            `json:"backlog"`
	IntakeSettle  settleResult   `json:"intake_settle"`
	RouteSettle   settleResult   `json:"route_settle"`
	Intake        intakeStats    `json:"intake"`
	IntakeSidecar stopResult     `json:"intake_sidecar"`
	Drain         drainResult    `json:"drain"`
	RouteSidecar  stopResult     `json:"route_sidecar"`
	Outcomes      []outcome      `json:"outcomes"`
	Delivered     map[string]int `json:"delivered"`
	// Peak is the higher VmHWM of the two processes, in bytes.
	Peak int64 `json:"peak_bytes"`
}

// runMemory takes in --memory-backlog requests through the webhook with an
// intake-only sidecar, then routes them with a sidecar with workers,
// sampling both processes' RSS every 100 ms.
func (r *runner) runMemory(ctx context.Context) (*memoryPhase, error) {
	ph := &memoryPhase{Backlog: r.cfg.MemoryBacklog}
	if _, err := clearBacklog(ctx, r.db); err != nil {
		return nil, err
	}
	ph.IntakeSettle = settle(ctx, r.db, r.stderr)
	p, err := r.launch.start(ctx, "memory-intake", map[string]string{"SIDECAR_WORKERS": "0"})
	if err != nil {
		return nil, err
	}
	var loadErr error
	ph.Intake, loadErr = runIntake(ctx, intakeLoad{URL: p.URL, Token: r.launch.token, Clients: r.cfg.Clients, N: ph.Backlog,
		Form: campaignForm(r.ds, r.runID+"-memory-")}, newProgress(r.stderr, "memory intake", int64(ph.Backlog), "requests"))
	died := !p.alive()
	ph.IntakeSidecar, err = p.stop(stopTimeout)
	if loadErr != nil {
		return ph, loadErr
	}
	if died {
		return ph, errSidecarDied
	}
	if err != nil {
		return ph, err
	}
	lo, hi, _, err := intakeBacklog(ctx, r.db, 0)
	if err != nil {
		return ph, err
	}
	ph.RouteSettle = settle(ctx, r.db, r.stderr)
	d, err := r.drainWith(ctx, "memory-route", nil, dispatchCounter(r.db), "memory routing", int64(ph.Intake.Accepted), "dispatches")
	ph.Drain, ph.RouteSidecar, ph.Delivered = d.Drain, d.Sidecar, d.Delivered
	ph.Peak = max(ph.IntakeSidecar.HWM, ph.RouteSidecar.HWM, ph.IntakeSidecar.PeakRSS, ph.RouteSidecar.PeakRSS)
	if err != nil {
		return ph, err
	}
	ph.Outcomes, err = dispatchOutcomes(ctx, r.db, lo, hi)
	return ph, err
}
