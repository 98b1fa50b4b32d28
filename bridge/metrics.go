package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the sidecar's Prometheus metrics. They live on their own
// registry (never the global one), served at /metrics.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, code
	RequestDuration *prometheus.HistogramVec // route
	Intake          *prometheus.CounterVec   // status: accepted, duplicate
	Dispatches      *prometheus.CounterVec   // state, channel
	Skips           *prometheus.CounterVec   // channel, reason
	ProviderLatency *prometheus.HistogramVec // channel, outcome
	BatchDuration   prometheus.Histogram
	QueueRows       *prometheus.CounterVec // channel, outcome
	QueueDepth      *prometheus.GaugeVec   // kind: pending, due
	Backlog         prometheus.Gauge
	ClaimLag        prometheus.Gauge
	BatchLimit      *prometheus.GaugeVec // worker: dispatch, queue
	IntakeBatch     prometheus.Histogram
}

// NewMetrics creates the metrics on a fresh registry, with Go and process
// collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sidecar_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}},
			[]string{"route"}),
		Intake: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_intake_total",
			Help: "Campaign webhook calls answered 200, by status (accepted or duplicate)."}, []string{"status"}),
		Dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_dispatches_total",
			Help: "Dispatches that reached an end state, by state and channel."}, []string{"state", "channel"}),
		Skips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_skips_total",
			Help: "Channels skipped while routing, by channel and reason."}, []string{"channel", "reason"}),
		ProviderLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sidecar_provider_duration_seconds",
			Help:    "Provider call latency by channel and outcome (ok, transient, permanent, unreachable, opted_out).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"channel", "outcome"}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sidecar_dispatch_batch_duration_seconds",
			Help: "Time to route one batch of dispatches (claim to commit).", Buckets: prometheus.DefBuckets}),
		QueueRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecar_queue_rows_total",
			Help: "message_queue rows processed, by channel and outcome (sent, rescheduled, failed, cancelled)."},
			[]string{"channel", "outcome"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sidecar_queue_depth",
			Help: "message_queue rows still pending (kind=pending) and due now (kind=due), for the channels with senders."},
			[]string{"kind"}),
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sidecar_backlog",
			Help: "Accepted dispatches not yet routed to an end state."}),
		ClaimLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sidecar_claim_lag_seconds",
			Help: "How late the oldest dispatch of the last claimed batch was."}),
		BatchLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sidecar_batch_limit",
			Help: "Rows the next claim asks for, by worker (dispatch, queue): the batch size, halved while a batch takes more than a quarter of SIDECAR_LEASE to send."},
			[]string{"worker"}),
		IntakeBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sidecar_intake_batch_size",
			Help: "Requests committed per intake transaction.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
	}
	r.MustRegister(m.Requests, m.RequestDuration, m.Intake, m.Dispatches, m.Skips, m.ProviderLatency, m.BatchDuration,
		m.QueueRows, m.QueueDepth, m.Backlog, m.ClaimLag, m.BatchLimit, m.IntakeBatch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.QueueDepth.WithLabelValues("pending")
	m.QueueDepth.WithLabelValues("due")
	return m
}
