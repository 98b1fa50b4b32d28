// Package guard protects senders: a per-channel rate limit
// (golang.org/x/time/rate) and a per-channel circuit breaker
// (github.com/sony/gobreaker/v2), with Prometheus metrics, applied as a
// channels.Middleware.
//
// The breaker counts only transient errors (timeouts, connection errors,
// 5xx, 429) as failures: a permanent, unreachable or opted-out answer shows
// the provider is up, so it counts as a success. A send cancelled by its
// caller counts as neither. While a breaker is open, sends fail at once
// with a transient error whose RetryAfter is the time left before the
// breaker lets a probe through, and the provider is not called.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/mautic-mm/sidecar/channels"
)

// State is a breaker state.
type State int

// The breaker states. The values are those of the state gauge.
const (
	Closed State = iota
	HalfOpen
	Open
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	default:
		return "closed"
	}
}

func fromBreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	default:
		return Closed
	}
}

// Guard makes the middleware and owns the per-channel limiters, breakers
// and metrics. It is safe for concurrent use.
type Guard struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu     sync.Mutex
	guards map[channels.Name]*guarded
}

// New validates cfg and returns a Guard whose metrics are registered on reg
// (never the global default registry). reg may be nil: metrics are then
// kept but not exported. Registering two Guards on one registry is an
// error. log may be nil.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{cfg: cfg, log: log, guards: map[channels.Name]*guarded{}}
	g.metrics = newMetrics(g)
	if reg != nil {
		if err := g.metrics.register(reg); err != nil {
			return nil, fmt.Errorf("guard metrics: %w", err)
		}
	}
	return g, nil
}

// Middleware wraps next with the rate limit and breaker of channel name. It
// has the signature of channels.Middleware. Wrapping the same name twice
// shares one limiter and one breaker.
func (g *Guard) Middleware(name channels.Name, next channels.Sender) channels.Sender {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gd, ok := g.guards[name]; ok {
		return &wrapped{gd: gd, next: next}
	}
	cfg := g.cfg.forChannel(name)
	gd := &guarded{name: name, cfg: cfg, g: g, log: g.log.With("channel", string(name))}
	if cfg.Rate > 0 {
		gd.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	}
	if cfg.BreakerFailures > 0 {
		gd.breaker = gobreaker.NewCircuitBreaker[channels.Receipt](gobreaker.Settings{
			Name:        string(name),
			MaxRequests: 1,
			Timeout:     cfg.BreakerTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.ConsecutiveFailures >= cfg.BreakerFailures
			},
			IsSuccessful:  func(err error) bool { return err == nil || channels.KindOf(err) != channels.KindTransient },
			IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
			OnStateChange: gd.stateChanged,
		})
	}
	g.guards[name] = gd
	return &wrapped{gd: gd, next: next}
}

// State returns the breaker state of channel name (Closed when the channel
// has no breaker or was never wrapped).
func (g *Guard) State(name channels.Name) State {
	g.mu.Lock()
	gd := g.guards[name]
	g.mu.Unlock()
	if gd == nil || gd.breaker == nil {
		return Closed
	}
	return fromBreaker(gd.breaker.State())
}

// states returns every breaker's current state, for the state gauge.
func (g *Guard) states() map[channels.Name]State {
	g.mu.Lock()
	list := make([]*guarded, 0, len(g.guards))
	for _, gd := range g.guards {
		list = append(list, gd)
	}
	g.mu.Unlock()
	out := make(map[channels.Name]State, len(list))
	for _, gd := range list {
		if gd.breaker != nil {
			out[gd.name] = fromBreaker(gd.breaker.State())
		}
	}
	return out
}

// guarded is one channel's limiter and breaker.
type guarded struct {
	name    channels.Name
	cfg     Config
	g       *Guard
	log     *slog.Logger
	limiter *rate.Limiter
	breaker *gobreaker.CircuitBreaker[channels.Receipt]

	mu       sync.Mutex
	openedAt time.Time
}

// stateChanged is gobreaker's OnStateChange: it runs under the breaker's
// lock, so it must not call the breaker.
func (gd *guarded) stateChanged(_ string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		gd.mu.Lock()
		gd.openedAt = time.Now()
		gd.mu.Unlock()
		gd.log.Warn("circuit breaker opened", "from", from.String(), "timeout", gd.cfg.BreakerTimeout.String())
		return
	}
	gd.log.Info("circuit breaker state changed", "from", from.String(), "to", to.String())
}

// retryAfter is the time left before an open breaker lets a probe through,
// or the breaker timeout when that is unknown or already over.
func (gd *guarded) retryAfter() time.Duration {
	gd.mu.Lock()
	opened := gd.openedAt
	gd.mu.Unlock()
	if !opened.IsZero() {
		if left := time.Until(opened.Add(gd.cfg.BreakerTimeout)); left > 0 {
			return left
		}
	}
	return gd.cfg.BreakerTimeout
}

func (gd *guarded) reject(state string) error {
	gd.g.metrics.rejected.WithLabelValues(string(gd.name)).Inc()
	return channels.Transient(channels.NotSent(fmt.Errorf("guard %s: circuit breaker %s after repeated transient failures, provider not called", gd.name, state)), gd.retryAfter())
}

// wait takes a token from the limiter, waiting on ctx. When the wait would
// outlast ctx's deadline it fails at once, with the wait as RetryAfter.
func (gd *guarded) wait(ctx context.Context) error {
	if gd.limiter == nil {
		return nil
	}
	start := time.Now()
	r := gd.limiter.ReserveN(start, 1)
	d := r.DelayFrom(start)
	if d == 0 {
		gd.g.metrics.wait.WithLabelValues(string(gd.name)).Observe(0)
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Sub(start) < d {
		r.Cancel()
		gd.g.metrics.limited.WithLabelValues(string(gd.name)).Inc()
		return channels.Transient(channels.NotSent(fmt.Errorf("guard %s: rate limit wait of %s exceeds the deadline", gd.name, d.Round(time.Millisecond))), d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		gd.g.metrics.wait.WithLabelValues(string(gd.name)).Observe(time.Since(start).Seconds())
		return nil
	case <-ctx.Done():
		r.Cancel()
		gd.g.metrics.limited.WithLabelValues(string(gd.name)).Inc()
		return channels.Transient(channels.NotSent(fmt.Errorf("guard %s: rate limit wait: %w", gd.name, ctx.Err())), 0)
	}
}

// wrapped is the Sender the middleware returns.
type wrapped struct {
	gd   *guarded
	next channels.Sender
}

// Send implements channels.Sender: breaker check, rate limit wait, then the
// wrapped sender under the breaker.
func (w *wrapped) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	gd := w.gd
	if gd.breaker != nil && gd.breaker.State() == gobreaker.StateOpen {
		return channels.Receipt{}, gd.reject("open")
	}
	if err := gd.wait(ctx); err != nil {
		return channels.Receipt{}, err
	}
	if gd.breaker == nil {
		return w.next.Send(ctx, msg)
	}
	called := false
	r, err := gd.breaker.Execute(func() (channels.Receipt, error) {
		called = true
		return w.next.Send(ctx, msg)
	})
	if !called {
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			return channels.Receipt{}, gd.reject("half-open with a probe in flight")
		}
		return channels.Receipt{}, gd.reject("open")
	}
	return r, err
}
