package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/internal/seed"
)

// TestAdaptBatchLimit walks the claim limit through slow and fast batches.
func TestAdaptBatchLimit(t *testing.T) {
	m := NewMetrics()
	b := newBatchLimit("dispatch", 128, 40*time.Second, slog.New(slog.DiscardHandler), m)
	steps := []struct {
		name       string
		asked, got int
		took       time.Duration
		want       int
	}{
		{"a batch over a quarter of the lease halves the limit", 128, 128, 11 * time.Second, 64},
		{"another slow batch that asked as much does not halve it again", 128, 128, 20 * time.Second, 64},
		{"a slow batch at the new limit halves it", 64, 64, 11 * time.Second, 32},
		{"between a sixteenth and a quarter nothing changes", 32, 32, 5 * time.Second, 32},
		{"a fast batch that was not full does not raise it", 32, 10, time.Second, 32},
		{"a fast full batch doubles it", 32, 32, time.Second, 64},
		{"a fast batch claimed before the change does not raise it twice", 32, 32, time.Second, 64},
		{"up to the configured size", 64, 64, time.Second, 128},
		{"and no further", 128, 128, time.Second, 128},
	}
	for _, s := range steps {
		b.adapt(s.asked, s.got, s.took)
		require.EqualValues(t, s.want, b.next(), s.name)
		require.Equal(t, float64(s.want), testutil.ToFloat64(m.BatchLimit.WithLabelValues("dispatch")), s.name)
	}
	b.n.Store(1)
	b.adapt(1, 1, time.Minute)
	require.Equal(t, 1, b.next(), "never below one dispatch")
}

// TestSlowProvidersShrinkTheBatch: a provider that takes one send at a
// time, 80 ms each, makes a batch of 32 outlast the send cut (¾ of a 3.2 s
// lease): the pipeline claims smaller batches until a batch fits in a
// quarter of the lease (8 sends, 640 ms), and every dispatch is still sent
// exactly once. When the provider is fast again the limit climbs back.
func TestSlowProvidersShrinkTheBatch(t *testing.T) {
	var (
		mu    sync.Mutex // one connection: one send at a time
		slow  atomic.Bool
		sends = map[string]int{}
		held  = make(chan struct{}) // closed when the fast phase's backlog is in
	)
	slow.Store(true)
	reg := channels.NewRegistry()
	require.NoError(t, reg.Add("email", channels.SenderFunc(func(ctx context.Context, m channels.Message) (channels.Receipt, error) {
		mu.Lock()
		defer mu.Unlock()
		if slow.Load() {
			select {
			case <-ctx.Done():
				return channels.Receipt{}, channels.Transient(channels.NotSent(context.Cause(ctx)), 0)
			case <-time.After(80 * time.Millisecond):
			}
		} else {
			<-held
		}
		sends[m.To]++
		return channels.Receipt{ProviderID: m.Key}, nil
	})))
	h := newHarnessWith(t, reg, withPipeline(func(o *Options) {
		o.Workers, o.BatchSize, o.Lease, o.SendTimeout = 1, 32, 3200*time.Millisecond, 3*time.Second
	}))
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	post := func(from, to int) {
		for i := from; i < to; i++ {
			h.dispatch(h.contact(seed.Contact{Email: fmt.Sprintf("c%d@example.test", i)}), msg)
		}
	}
	post(0, 48)
	h.start()
	idle := func() bool { return h.db.Count(t, "sidecar_dispatches", "state = 'accepted'") == 0 }
	require.Eventually(t, idle, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 8, h.app.pipeline.limit.next(), "8 sends of 80 ms fit in a quarter of the lease, 16 do not")

	slow.Store(false)
	post(48, 200) // the batch that claims the first of them waits until all are in: the next batches are full
	close(held)
	require.Eventually(t, idle, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 32, h.app.pipeline.limit.next(), "fast full batches raise the limit back")

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, sends, 200)
	for id, n := range sends {
		require.Equal(t, 1, n, "%s", id)
	}
	require.Equal(t, 200, h.db.Count(t, "sidecar_dispatches", "state = 'sent'"))
}
