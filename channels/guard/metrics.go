package guard

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the guard's Prometheus collectors.
type metrics struct {
	state    *stateCollector
	rejected *prometheus.CounterVec
	wait     *prometheus.HistogramVec
	limited  *prometheus.CounterVec
}

func newMetrics(g *Guard) *metrics {
	return &metrics{
		state: &stateCollector{g: g, desc: prometheus.NewDesc(
			"sidecar_sender_breaker_state",
			"Circuit breaker state per channel: 0 closed, 1 half-open, 2 open.",
			[]string{"channel"}, nil,
		)},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_sender_breaker_rejected_total",
			Help: "Sends failed at once because the channel's circuit breaker was open.",
		}, []string{"channel"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sidecar_sender_rate_limit_wait_seconds",
			Help:    "Time sends waited for the channel's rate limit.",
			Buckets: []float64{0, .001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"channel"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_sender_rate_limit_aborted_total",
			Help: "Sends given up while waiting for the rate limit (deadline too close or context done).",
		}, []string{"channel"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.state, m.rejected, m.wait, m.limited} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stateCollector reports each breaker's state when scraped: gobreaker moves
// from open to half-open lazily, so a gauge set on transitions would lag.
type stateCollector struct {
	g    *Guard
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.g.states() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s), string(name))
	}
}
