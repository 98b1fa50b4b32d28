// Package bridge is the campaign webhook and everything behind it: the HTTP
// API (DESIGN.md section 4), the routing decision (section 6, decide.go),
// the durable dispatch pipeline (section 5) and the message_queue worker
// (section 6.5). It converts between Mautic's rows (package mautic) and the
// senders' messages (package channels); it writes no SQL itself.
package bridge

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
	"github.com/mautic-mm/sidecar/store"
)

// Config is the bridge's configuration.
type Config struct {
	// Token is SIDECAR_TOKEN, required on /v1/* except provider callbacks.
	Token string
	// TwilioAuthToken verifies X-Twilio-Signature on /v1/callbacks/twilio
	// (empty: the callback answers 404).
	TwilioAuthToken string
	// PublicURL is how Twilio reaches us (the signed URL); when empty the
	// request's own scheme and host are used.
	PublicURL string
	// SMSRegion is SMS_DEFAULT_REGION, for matching opt-out numbers.
	SMSRegion string
	// QueueWorker runs the message_queue worker (SIDECAR_QUEUE=sidecar).
	QueueWorker bool
	DedupWindow time.Duration
	MaxBacklog  int
	// IntakeWriters is the number of concurrent intake transactions.
	IntakeWriters int
	Pipeline      Options
	// Version is shown on the status page.
	Version string
}

// App is the running sidecar: HTTP API, intake, dispatch workers and queue
// worker, on one database.
type App struct {
	cfg      Config
	db       *mautic.DB
	store    *store.DB
	senders  *channels.Registry
	log      *slog.Logger
	metrics  *Metrics
	intake   *Intake
	pipeline *Pipeline
	queue    *QueueWorker
	engine   http.Handler

	readyMu   sync.Mutex
	readyAt   time.Time
	readyErr  error
	bgCancel  context.CancelFunc
	bgDone    sync.WaitGroup
	runCancel context.CancelFunc
	runDone   sync.WaitGroup
	multi     *sql.DB
}

// New wires the sidecar. Nothing runs until Start.
func New(cfg Config, db *mautic.DB, senders *channels.Registry, log *slog.Logger, m *Metrics) *App {
	if m == nil {
		m = NewMetrics()
	}
	cfg.Pipeline.setDefaults()
	st := store.New(db.DB, db.Prefix())
	a := &App{cfg: cfg, db: db, store: st, senders: senders, log: log, metrics: m}
	if multi, err := db.OpenMultiStatement(max(cfg.IntakeWriters, 4)); err != nil {
		log.Warn("intake: no multi-statement pool; one round trip per statement", "err", err)
	} else if multi != nil {
		st.SetMultiStatement(multi)
		a.multi = multi
	}
	a.pipeline = NewPipeline(db, st, senders, log.With("component", "dispatch"), m, cfg.Pipeline)
	a.intake = NewIntake(db, st, senders, log.With("component", "intake"), m, IntakeOptions{
		DedupWindow: cfg.DedupWindow, MaxBacklog: cfg.MaxBacklog, MessageCacheTTL: cfg.Pipeline.MessageCacheTTL, Writers: cfg.IntakeWriters,
		OnAccept: a.pipeline.Wake,
	})
	a.queue = NewQueueWorker(db, st, senders, log.With("component", "queue"), m, cfg.Pipeline)
	a.engine = a.routes()
	return a
}

// Handler returns the HTTP handler.
func (a *App) Handler() http.Handler { return a.engine }

// Metrics returns the metrics.
func (a *App) Metrics() *Metrics { return a.metrics }

// Store returns the sidecar's tables.
func (a *App) Store() *store.DB { return a.store }

// Pipeline returns the dispatch pipeline.
func (a *App) Pipeline() *Pipeline { return a.pipeline }

// SetTweets tells whether Mautic's tweet tables exist.
func (a *App) SetTweets(ok bool) {
	a.pipeline.SetTweets(ok)
	a.queue.loader.hasTweets = ok
}

// Start runs the workers and the background upkeep until Stop.
func (a *App) Start() {
	runCtx, cancel := context.WithCancel(context.Background())
	a.runCancel = cancel
	a.runDone.Add(1)
	go func() {
		defer a.runDone.Done()
		a.pipeline.Run(runCtx)
	}()
	if a.cfg.QueueWorker {
		a.runDone.Add(1)
		go func() {
			defer a.runDone.Done()
			a.queue.Run(runCtx)
		}()
	}
	bg, bgCancel := context.WithCancel(context.Background())
	a.bgCancel = bgCancel
	a.bgDone.Add(2)
	go func() {
		defer a.bgDone.Done()
		a.upkeep(bg)
	}()
	go func() {
		defer a.bgDone.Done()
		a.flushCounters(bg)
	}()
}

// Stop finishes in-flight work within timeout: the intake answers what it
// has, the workers finish their current batch; whatever is still running at
// the deadline is rolled back and stays accepted for another process.
// Call it after the HTTP server stopped accepting requests.
func (a *App) Stop(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	a.intake.Close()
	if a.runCancel != nil {
		a.runCancel()
	}
	done := make(chan struct{})
	go func() {
		a.runDone.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		a.log.Warn("shutdown deadline reached: cancelling in-flight sends; each is recorded as a transient try and retried later")
		a.pipeline.Abort()
		a.queue.Abort()
		<-done
	}
	if a.bgCancel != nil {
		a.bgCancel()
		a.bgDone.Wait()
	}
	if a.multi != nil {
		_ = a.multi.Close()
	}
}

// counterFlushEvery is how often recorded counter increments are applied to
// Mautic's sent counters.
const counterFlushEvery = 200 * time.Millisecond

// FlushCounters applies every recorded counter increment to Mautic's
// content counters now.
func (a *App) FlushCounters(ctx context.Context) error {
	return a.flushAll(ctx, 0)
}

// flushAll applies every recorded increment, in chunks. wait bounds how
// long its first chunk waits for the flusher's lock (see
// mautic.DB.FlushCounters).
func (a *App) flushAll(ctx context.Context, wait time.Duration) error {
	for {
		n, err := a.db.FlushCounters(ctx, 5000, wait)
		if err != nil || n < 5000 {
			return err
		}
		wait = 0
	}
}

// flushCounters runs until ctx ends, then flushes once more.
//
// A chunk of a flush runs to its end even when ctx ends in the middle of
// it: cut short, its connection would be closed under it, and the server
// could still hold the flusher's lock (its thread not yet gone) when the
// last flush asks for it, which would then apply nothing. The last flush
// waits a moment for the lock all the same, in case such a chunk came
// before (one that outlived its own 5 s bound).
func (a *App) flushCounters(ctx context.Context) {
	tick := time.NewTicker(counterFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.flushAll(fctx, 2*time.Second); err != nil {
				a.log.Warn("could not apply the last counter increments; the next start applies them", "err", err)
			}
			cancel()
			return
		case <-tick.C:
			// In chunks; one that has begun is not cut short, the next
			// is left to the last flush.
			for ctx.Err() == nil {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				n, err := a.db.FlushCounters(fctx, 5000, 0)
				cancel()
				if err != nil {
					a.log.Warn("applying counter increments failed; retried shortly", "err", err)
				}
				if err != nil || n < 5000 {
					break
				}
			}
		}
	}
}

// upkeep refreshes the backlog and queue gauges and purges old dedup keys.
func (a *App) upkeep(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		// Counting the backlog reads one index entry per accepted dispatch,
		// and under a steady intake that count is a good share of the
		// database's work. It is counted every 500 ms once the figure
		// reaches half of SIDECAR_MAX_BACKLOG, every 5 s below that. In
		// between, the intake adds what it accepts, so the figure errs high,
		// on the safe side of the limit; what other replicas accept is seen
		// at the next count, and below half the limit it would take them
		// half the limit in 5 s to pass it unseen.
		if n%10 == 0 || a.intake.Backlog() >= int64(a.cfg.MaxBacklog)/2 {
			if err := a.intake.RefreshBacklog(ctx); err != nil && ctx.Err() == nil {
				a.log.Debug("backlog refresh failed", "err", err)
			}
		}
		if n%10 == 0 {
			a.refreshQueueDepth(ctx)
			if err := a.store.PurgeQueueLeases(ctx, time.Now().Add(-time.Minute)); err != nil && ctx.Err() == nil {
				a.log.Debug("queue lease purge failed", "err", err)
			}
			if a.cfg.DedupWindow > 0 {
				// In chunks until done (at most 100,000 keys per 5 s,
				// far above the intake's rate).
				for range 50 {
					purged, err := a.store.PurgeKeys(ctx, time.Now().Add(-a.cfg.DedupWindow-time.Minute), 2000)
					if err != nil && ctx.Err() == nil {
						a.log.Debug("dedup key purge failed", "err", err)
					}
					if err != nil || purged < 2000 {
						break
					}
				}
			}
		}
		n++
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *App) refreshQueueDepth(ctx context.Context) {
	names := a.senders.Names()
	chans := make([]string, len(names))
	for i, n := range names {
		chans[i] = string(n)
	}
	pending, due, err := a.db.QueueDepth(ctx, a.db, chans, time.Now())
	if err != nil {
		return
	}
	a.metrics.QueueDepth.WithLabelValues("pending").Set(float64(pending))
	a.metrics.QueueDepth.WithLabelValues("due").Set(float64(due))
}

// Ready reports whether the database answers and the sidecar's schema is
// current (cached for a second).
func (a *App) Ready(ctx context.Context) error {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	if time.Since(a.readyAt) < time.Second {
		return a.readyErr
	}
	a.readyAt = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.db.PingContext(ctx); err != nil {
		a.readyErr = errUnavailable
		return a.readyErr
	}
	st, err := migrations.Read(a.db.DB.DB, a.db.Prefix())
	switch {
	case err != nil:
		a.readyErr = errUnavailable
	case !st.Current():
		a.readyErr = errSchemaNotCurrent{st}
	default:
		a.readyErr = nil
	}
	return a.readyErr
}

type errSchemaNotCurrent struct{ st migrations.Status }

func (e errSchemaNotCurrent) Error() string {
	return "the sidecar schema is at " + e.st.String() + ": " + e.st.Advice()
}
