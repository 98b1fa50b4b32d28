package guard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
)

// scripted is a fake sender that answers with the errors it is given, in
// order, then succeeds; it counts calls.
type scripted struct {
	mu    sync.Mutex
	errs  []error
	calls atomic.Int32
}

func (s *scripted) push(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, errs...)
}

func (s *scripted) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return channels.Receipt{ProviderID: "ok"}, nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return channels.Receipt{}, err
}

var (
	errTransient   = channels.Transient(errors.New("503 from provider"), 0)
	errPermanent   = channels.Permanent(errors.New("400 from provider"))
	errUnreachable = channels.Unreachable(errors.New("invalid number"))
	errOptedOut    = channels.OptedOut(errors.New("21610"))
)

func newGuard(t *testing.T, cfg Config) (*Guard, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g, err := New(cfg, reg, nil)
	require.NoError(t, err)
	return g, reg
}

func send(t *testing.T, s channels.Sender) error {
	t.Helper()
	_, err := s.Send(context.Background(), channels.Message{Channel: channels.SMS})
	return err
}

func TestBreakerOpensAfterConsecutiveTransientFailures(t *testing.T) {
	g, _ := newGuard(t, Config{BreakerFailures: 3, BreakerTimeout: time.Hour})
	next := &scripted{}
	next.push(errTransient, errTransient, errTransient)
	s := g.Middleware(channels.SMS, next)

	for i := 0; i < 3; i++ {
		require.ErrorIs(t, send(t, s), errTransient)
	}
	require.Equal(t, Open, g.State(channels.SMS))

	err := send(t, s)
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	require.ErrorContains(t, err, "provider not called")
	require.EqualValues(t, 3, next.calls.Load(), "an open breaker does not call the provider")
	ra := channels.RetryAfterOf(err)
	require.Greater(t, ra, 59*time.Minute)
	require.LessOrEqual(t, ra, time.Hour)
	require.Equal(t, 1.0, testutil.ToFloat64(g.metrics.rejected.WithLabelValues("sms")))
}

func TestBreakerIgnoresNonTransientErrors(t *testing.T) {
	tests := []struct {
		name string
		errs []error
	}{
		{"permanent", []error{errPermanent, errPermanent, errPermanent, errPermanent}},
		{"unreachable", []error{errUnreachable, errUnreachable, errUnreachable, errUnreachable}},
		{"opted out", []error{errOptedOut, errOptedOut, errOptedOut, errOptedOut}},
		{"non-transient resets the count", []error{errTransient, errTransient, errPermanent, errTransient, errTransient, errUnreachable, errTransient}},
		{"cancelled sends are not counted", []error{errTransient, errTransient, channels.Transient(context.Canceled, 0), channels.Transient(context.Canceled, 0), channels.Transient(context.Canceled, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := newGuard(t, Config{BreakerFailures: 3, BreakerTimeout: time.Hour})
			next := &scripted{}
			next.push(tc.errs...)
			s := g.Middleware(channels.SMS, next)
			for range tc.errs {
				_ = send(t, s)
			}
			require.Equal(t, Closed, g.State(channels.SMS))
			require.NoError(t, send(t, s))
			require.EqualValues(t, len(tc.errs)+1, next.calls.Load())
		})
	}
}

func TestBreakerHalfOpensAfterTimeout(t *testing.T) {
	tests := []struct {
		name  string
		probe error
		want  State
	}{
		{"successful probe closes", nil, Closed},
		{"permanent probe closes", errPermanent, Closed},
		{"failed probe reopens", errTransient, Open},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := newGuard(t, Config{BreakerFailures: 2, BreakerTimeout: 20 * time.Millisecond})
			next := &scripted{}
			next.push(errTransient, errTransient)
			if tc.probe != nil {
				next.push(tc.probe)
			}
			s := g.Middleware(channels.SMS, next)
			_ = send(t, s)
			_ = send(t, s)
			require.Equal(t, Open, g.State(channels.SMS))

			require.Eventually(t, func() bool { return g.State(channels.SMS) == HalfOpen }, 5*time.Second, 5*time.Millisecond)
			probeErr := send(t, s)
			require.ErrorIs(t, probeErr, tc.probe)
			require.EqualValues(t, 3, next.calls.Load(), "the probe reached the provider")
			require.Equal(t, tc.want, g.State(channels.SMS))
		})
	}
}

func TestBreakerHalfOpenLetsOneProbe(t *testing.T) {
	g, _ := newGuard(t, Config{BreakerFailures: 1, BreakerTimeout: 20 * time.Millisecond})
	release := make(chan struct{})
	entered := make(chan struct{})
	var calls atomic.Int32
	s := g.Middleware(channels.SMS, channels.SenderFunc(func(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
		if calls.Add(1) == 1 {
			return channels.Receipt{}, errTransient
		}
		close(entered)
		<-release
		return channels.Receipt{}, nil
	}))
	_ = send(t, s)
	require.Eventually(t, func() bool { return g.State(channels.SMS) == HalfOpen }, 5*time.Second, 5*time.Millisecond)

	done := make(chan error, 1)
	go func() { done <- send(t, s) }()
	<-entered
	err := send(t, s) // while the probe is in flight
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	require.ErrorContains(t, err, "probe in flight")
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, Closed, g.State(channels.SMS))
	require.EqualValues(t, 2, calls.Load())
}

func TestBreakersArePerChannel(t *testing.T) {
	g, _ := newGuard(t, Config{BreakerFailures: 1, BreakerTimeout: time.Hour})
	sms := &scripted{}
	sms.push(errTransient)
	push := &scripted{}
	s1 := g.Middleware(channels.SMS, sms)
	s2 := g.Middleware(channels.Notification, push)
	_ = send(t, s1)
	require.Equal(t, Open, g.State(channels.SMS))
	require.Equal(t, Closed, g.State(channels.Notification))
	require.NoError(t, send(t, s2))
}

func TestNoBreakerWhenDisabled(t *testing.T) {
	g, _ := newGuard(t, Config{})
	next := &scripted{}
	for i := 0; i < 20; i++ {
		next.push(errTransient)
	}
	s := g.Middleware(channels.SMS, next)
	for i := 0; i < 20; i++ {
		require.ErrorIs(t, send(t, s), errTransient)
	}
	require.EqualValues(t, 20, next.calls.Load())
	require.NoError(t, send(t, s))
}

func TestRateLimitBurstThenDeadline(t *testing.T) {
	// One token every 1000 s, burst 2: two sends go at once, the third
	// would wait far beyond its deadline and fails at once.
	g, _ := newGuard(t, Config{Rate: 0.001, Burst: 2})
	next := &scripted{}
	s := g.Middleware(channels.SMS, next)
	require.NoError(t, send(t, s))
	require.NoError(t, send(t, s))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.Send(ctx, channels.Message{})
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	require.ErrorContains(t, err, "rate limit")
	require.InDelta(t, 1000, channels.RetryAfterOf(err).Seconds(), 5)
	require.EqualValues(t, 2, next.calls.Load(), "the limited send never reached the provider")
	require.Equal(t, 1.0, testutil.ToFloat64(g.metrics.limited.WithLabelValues("sms")))
}

func TestRateLimitWaitEndsWithContext(t *testing.T) {
	g, _ := newGuard(t, Config{Rate: 0.001, Burst: 1})
	next := &scripted{}
	s := g.Middleware(channels.SMS, next)
	require.NoError(t, send(t, s))

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no deadline: the send waits on ctx, which is already done
	_, err := s.Send(ctx, channels.Message{})
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 1, next.calls.Load())
}

func TestRateLimitOrderAndCounts(t *testing.T) {
	// A fast limit: every send goes through, in order, and each one is
	// observed once by the wait histogram. No durations are asserted.
	g, reg := newGuard(t, Config{Rate: 1000, Burst: 1})
	var mu sync.Mutex
	var order []int64
	s := g.Middleware(channels.SMS, channels.SenderFunc(func(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, msg.Contact.ID)
		return channels.Receipt{}, nil
	}))
	for i := int64(1); i <= 5; i++ {
		_, err := s.Send(context.Background(), channels.Message{Contact: channels.Contact{ID: i}})
		require.NoError(t, err)
	}
	require.Equal(t, []int64{1, 2, 3, 4, 5}, order)
	require.Equal(t, 1, testutil.CollectAndCount(g.metrics.wait, "sidecar_sender_rate_limit_wait_seconds"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() == "sidecar_sender_rate_limit_wait_seconds" {
			count = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	require.EqualValues(t, 5, count)
}

func TestUnlimitedByDefault(t *testing.T) {
	g, _ := newGuard(t, Config{})
	next := &scripted{}
	s := g.Middleware(channels.SMS, next)
	for i := 0; i < 100; i++ {
		require.NoError(t, send(t, s))
	}
	require.EqualValues(t, 100, next.calls.Load())
}

func TestChannelOverrides(t *testing.T) {
	g, _ := newGuard(t, Config{
		BreakerFailures: 1, BreakerTimeout: time.Hour,
		Channels: map[channels.Name]Config{channels.SMS: {BreakerFailures: 3, BreakerTimeout: time.Hour}},
	})
	sms := &scripted{}
	sms.push(errTransient, errTransient)
	email := &scripted{}
	email.push(errTransient)
	s1 := g.Middleware(channels.SMS, sms)
	s2 := g.Middleware(channels.Email, email)
	_ = send(t, s1)
	_ = send(t, s1)
	_ = send(t, s2)
	require.Equal(t, Closed, g.State(channels.SMS), "sms opens after 3")
	require.Equal(t, Open, g.State(channels.Email), "others after 1")
}

func TestStateMetric(t *testing.T) {
	g, reg := newGuard(t, Config{BreakerFailures: 1, BreakerTimeout: time.Hour})
	next := &scripted{}
	next.push(errTransient)
	s := g.Middleware(channels.SMS, next)
	_ = g.Middleware(channels.Email, &scripted{})
	_ = send(t, s)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sidecar_sender_breaker_state" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, map[string]float64{"sms": 2, "email": 0}, got)
}

func TestNewRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := New(Config{}, reg, nil)
	require.NoError(t, err)
	_, err = New(Config{}, reg, nil)
	require.ErrorContains(t, err, "guard metrics")
	_, err = New(Config{}, nil, nil)
	require.NoError(t, err, "nil registerer: metrics not exported")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"full", Config{Rate: 2.5, Burst: 5, BreakerFailures: 5, BreakerTimeout: time.Second}, ""},
		{"negative rate", Config{Rate: -1}, "rate must be"},
		{"negative burst", Config{Burst: -1}, "burst must be"},
		{"negative timeout", Config{BreakerTimeout: -time.Second}, "breaker timeout must be"},
		{"bad override", Config{Channels: map[channels.Name]Config{"sms": {Rate: -2}}}, "sms: rate must be"},
		{"nested override", Config{Channels: map[channels.Name]Config{"sms": {Channels: map[channels.Name]Config{"x": {}}}}}, "cannot have overrides"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
