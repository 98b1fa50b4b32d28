package bridge

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// batchLimit is how many rows the next claims of one kind of worker ask
// for: the configured batch size while batches are quick, less while
// providers are slow.
//
// The sends of a batch are cut at ¾ of the lease (the write must land
// while the lease still fences it). When the providers slow down, and the
// connections to them are shared by every batch in flight, a big batch runs
// into that cut: its late sends time out and are tried again, batch after
// batch. So a batch that took more than a quarter of the lease from its
// claim to its last send halves the limit (never below 1), and a full batch
// that took less than a sixteenth of it doubles the limit again, up to the
// configured size. The gap between the two keeps the limit from swinging.
type batchLimit struct {
	kind  string // dispatch or queue: the metric's label and the logs'
	max   int
	lease time.Duration
	n     atomic.Int64
	log   *slog.Logger
	gauge prometheus.Gauge // nil without metrics
}

func newBatchLimit(kind string, size int, lease time.Duration, log *slog.Logger, m *Metrics) *batchLimit {
	b := &batchLimit{kind: kind, max: size, lease: lease, log: log}
	if m != nil {
		b.gauge = m.BatchLimit.WithLabelValues(kind)
	}
	b.n.Store(int64(size))
	b.report(int64(size))
	return b
}

// next is what the next claim asks for.
func (b *batchLimit) next() int { return int(b.n.Load()) }

// adapt sets the limit from a batch that asked for asked rows, got got,
// and took took from its claim to its last send. Workers finishing slow
// batches at the same time each lower the limit to half of what they asked,
// not half of one another's result.
func (b *batchLimit) adapt(asked, got int, took time.Duration) {
	switch {
	case took > b.lease/4 && asked > 1:
		next := int64(asked / 2)
		for {
			cur := b.n.Load()
			if cur <= next {
				return
			}
			if b.n.CompareAndSwap(cur, next) {
				b.log.Warn("a batch's sends took more than a quarter of the lease: claiming smaller batches",
					"worker", b.kind, "took", took.Round(time.Millisecond), "lease", b.lease, "batch_limit", next)
				b.report(next)
				return
			}
		}
	case took < b.lease/16 && got >= asked && asked < b.max:
		next := int64(min(asked*2, b.max))
		if b.n.CompareAndSwap(int64(asked), next) {
			b.log.Info("batches are quick again: claiming bigger batches",
				"worker", b.kind, "took", took.Round(time.Millisecond), "batch_limit", next)
			b.report(next)
		}
	}
}

func (b *batchLimit) report(n int64) {
	if b.gauge != nil {
		b.gauge.Set(float64(n))
	}
}
