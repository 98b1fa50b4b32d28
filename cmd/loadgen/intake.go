package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mautic-mm/sidecar/internal/webhookclient"
)

// intakeLoad is one run of webhook calls, as Mautic's "Send a webhook"
// action makes them: a form-encoded POST with the bearer token.
type intakeLoad struct {
	URL     string // the sidecar's base URL (127.0.0.1 only)
	Token   string
	Clients int
	N       int           // requests; 0: bounded by For only
	For     time.Duration // 0: bounded by N only
	// Form returns the form body of request i.
	Form func(i int) string
}

// intakeStats is what the load saw.
type intakeStats struct {
	Requests   int            `json:"requests"`
	OK         int            `json:"ok"` // answered 200
	Accepted   int            `json:"accepted"`
	Duplicate  int            `json:"duplicate"`
	Other      map[string]int `json:"other,omitempty"` // other statuses and transport errors
	Seconds    float64        `json:"seconds"`
	Rate       float64        `json:"ok_per_second"`
	Latency    latency        `json:"latency"` // of the 200 answers
	FirstError string         `json:"first_error,omitempty"`
}

// campaignForm builds the body Mautic sends for the configured action
// fields: contact_id = {contactfield=id}, message_id, campaign_id, event_id
// and an idempotency_key unique to the run and phase.
func campaignForm(ds *dataset, keyPrefix string) func(i int) string {
	fixed := "&message_id=" + strconv.FormatInt(ds.MessageID, 10) + "&campaign_id=" + strconv.FormatInt(ds.CampaignID, 10) +
		"&event_id=" + strconv.FormatInt(ds.EventID, 10) + "&idempotency_key=" + keyPrefix
	return func(i int) string {
		contact := int64(i%ds.Contacts) + 1
		return "contact_id=" + strconv.FormatInt(contact, 10) + fixed + strconv.Itoa(i)
	}
}

// runIntake sends the requests from l.Clients goroutines and measures each
// one from the start of the request to the end of the answer's body.
func runIntake(ctx context.Context, l intakeLoad, prog *progress) (intakeStats, error) {
	target, err := webhookclient.NewTarget(l.URL, l.Token)
	if err != nil {
		return intakeStats{}, err
	}

	var next, answered atomic.Int64
	type result struct {
		lat          []time.Duration
		ok, acc, dup int
		other        map[string]int
		firstErr     string
		lastDone     time.Time
	}
	results := make([]result, l.Clients)
	start := time.Now()
	deadline := time.Time{}
	if l.For > 0 {
		deadline = start.Add(l.For)
	}
	stopProg := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProg:
				return
			case <-t.C:
				prog.update(answered.Load())
			}
		}
	}()
	var wg sync.WaitGroup
	for c := 0; c < l.Clients; c++ {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			r.other = map[string]int{}
			if l.N > 0 {
				r.lat = make([]time.Duration, 0, l.N/l.Clients+16)
			}
			conn := target.Conn()
			defer conn.Close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if (l.N > 0 && i >= l.N) || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				t0 := time.Now()
				status, answer, err := conn.Post(ctx, l.Form(i))
				d := time.Since(t0)
				answered.Add(1)
				r.lastDone = time.Now()
				switch {
				case err != nil:
					r.other["transport error"]++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
				case status == http.StatusOK:
					r.ok++
					r.lat = append(r.lat, d)
					if bytes.Contains(answer, []byte(`"duplicate"`)) {
						r.dup++
					} else {
						r.acc++
					}
				default:
					r.other[strconv.Itoa(status)]++
					if r.firstErr == "" {
						r.firstErr = fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(answer))
					}
				}
			}
		}(&results[c])
	}
	wg.Wait()
	close(stopProg)
	prog.update(answered.Load())
	prog.finish()

	var st intakeStats
	var all []time.Duration
	end := start
	st.Other = map[string]int{}
	for _, r := range results {
		all = append(all, r.lat...)
		st.OK += r.ok
		st.Accepted += r.acc
		st.Duplicate += r.dup
		for k, v := range r.other {
			st.Other[k] += v
		}
		if st.FirstError == "" {
			st.FirstError = r.firstErr
		}
		if r.lastDone.After(end) {
			end = r.lastDone
		}
	}
	st.Requests = int(answered.Load())
	st.Seconds = end.Sub(start).Seconds()
	if st.Seconds > 0 {
		st.Rate = float64(st.OK) / st.Seconds
	}
	st.Latency = summarize(all)
	if len(st.Other) == 0 {
		st.Other = nil
	}
	return st, nil
}

// intakePhase is the intake measurement.
type intakePhase struct {
	Settle  settleResult `json:"settle"`
	Load    intakeStats  `json:"load"`
	Sidecar stopResult   `json:"sidecar"`
	// FloorAfter is the insert floor measured again right after the load
	// (when the floor phase ran before it).
	FloorAfter *floorResult `json:"insert_floor_after,omitempty"`
}

// intakeFloor is the insert floor the intake is set against: the mean of
// the floors measured before and after it, or the one before.
func intakeFloor(before *floorResult, ph *intakePhase) (rate float64, note string) {
	if before == nil {
		return 0, ""
	}
	if ph == nil || ph.FloorAfter == nil {
		return before.Rate, ""
	}
	return (before.Rate + ph.FloorAfter.Rate) / 2, fmt.Sprintf("; floor: mean of %s commits/s before and %s after",
		num(before.Rate), num(ph.FloorAfter.Rate))
}

// runIntakePhase calls the webhook from the load clients against an
// intake-only sidecar (SIDECAR_WORKERS=0: nothing is routed meanwhile).
func (r *runner) runIntakePhase(ctx context.Context) (*intakePhase, error) {
	ph := &intakePhase{Settle: settle(ctx, r.db, r.stderr)}
	p, err := r.launch.start(ctx, "intake", map[string]string{"SIDECAR_WORKERS": "0"})
	if err != nil {
		return nil, err
	}
	var loadErr error
	ph.Load, loadErr = runIntake(ctx, intakeLoad{URL: p.URL, Token: r.launch.token, Clients: r.cfg.Clients, N: r.cfg.Intake.N,
		For: r.cfg.Intake.For, Form: campaignForm(r.ds, r.runID+"-intake-")},
		newProgress(r.stderr, "intake", int64(r.cfg.Intake.N), "requests"))
	died := !p.alive()
	ph.Sidecar, err = p.stop(stopTimeout)
	switch {
	case loadErr != nil:
		return ph, loadErr
	case died:
		return ph, errSidecarDied
	}
	return ph, err
}
