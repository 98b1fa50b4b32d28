package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// QueueWorker drains Mautic's message_queue for the channels that have a
// sender (SIDECAR_QUEUE=sidecar, DESIGN.md 6.5), rows Mautic queued itself
// included, with Mautic's semantics (mautic-reference.md 5.2).
type QueueWorker struct {
	db      *mautic.DB
	store   *store.DB
	senders *channels.Registry
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	loader  *loader
	now     func() time.Time
	limit   *batchLimit

	hardCtx  context.Context
	hardStop context.CancelFunc

	floorMu sync.Mutex
	floor   time.Time // earliest scheduled_date of the pending rows
	floorAt time.Time // when floor was read
}

// floorEvery is how often the lower bound of the claim scan is read again:
// a row queued with a scheduled date before the bound (a clock skew, a row
// whose lease expired) waits at most this long.
const floorEvery = 10 * time.Second

// scanFrom returns the lower bound of the claim scan.
func (q *QueueWorker) scanFrom(ctx context.Context, chans []string) (time.Time, error) {
	q.floorMu.Lock()
	defer q.floorMu.Unlock()
	if !q.floorAt.IsZero() && time.Since(q.floorAt) < floorEvery {
		return q.floor, nil
	}
	f, err := q.db.PendingQueueFloor(ctx, q.db, chans)
	if err != nil {
		return time.Time{}, err
	}
	q.floor, q.floorAt = f, time.Now()
	return f, nil
}

// advanceFloor raises the lower bound to t, the scheduled date of the
// first row a claim returned. The claim reads in scheduled_date order, so
// every due row before t that it did not return is sent, cancelled or held
// by another batch (row lock or lease); such a batch finishes its rows or
// gives them back, and a batch of this process that gives rows back or
// fails to write reads the floor again (resetFloor). A row another replica
// held and let expire waits for the next read, at most floorEvery. Without
// this the scan would pass every row sent since the last read on each
// claim, which at thousands of rows a second is most of the claim's cost.
func (q *QueueWorker) advanceFloor(t time.Time) {
	q.floorMu.Lock()
	if !q.floorAt.IsZero() && t.After(q.floor) {
		q.floor = t
	}
	q.floorMu.Unlock()
}

// resetFloor makes the next claim read the lower bound again.
func (q *QueueWorker) resetFloor() {
	q.floorMu.Lock()
	q.floorAt = time.Time{}
	q.floorMu.Unlock()
}

// NewQueueWorker builds the message_queue worker.
func NewQueueWorker(db *mautic.DB, st *store.DB, senders *channels.Registry, log *slog.Logger, m *Metrics, opts Options) *QueueWorker {
	opts.setDefaults()
	hard, stop := context.WithCancel(context.Background())
	return &QueueWorker{db: db, store: st, senders: senders, log: log, metrics: m, opts: opts,
		loader: &loader{db: db, senders: senders, defaults: opts.FrequencyDefaults, msgCache: newMessageCache(db, 0), hasTweets: true},
		now:    func() time.Time { return time.Now().UTC() }, hardCtx: hard, hardStop: stop,
		limit: newBatchLimit("queue", opts.QueueBatchSize, opts.Lease, log, m)}
}

// Abort rolls back in-flight batches.
func (q *QueueWorker) Abort() { q.hardStop() }

// Run processes due rows until ctx is done. A few workers are enough: each
// batch sends its rows concurrently.
func (q *QueueWorker) Run(ctx context.Context) {
	n := max(1, q.opts.Workers/4)
	if q.opts.Workers == 0 {
		return // an intake-only process
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for ctx.Err() == nil {
				done, err := q.RunOnce(ctx)
				if err != nil {
					failures++
					if !errors.Is(err, context.Canceled) {
						q.log.Warn("queue batch failed", "err", err, "attempt", failures)
					}
					sleepCtx(ctx, backoffDelay(failures, 200*time.Millisecond, 10*time.Second))
					continue
				}
				failures = 0
				if done == 0 {
					sleepCtx(ctx, 500*time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// queueJob is one message_queue row being processed.
type queueJob struct {
	row     mautic.QueueRow
	w       *writes
	outcome string // sent, cancelled, failed, rescheduled
	resched time.Time
}

// RunOnce processes one batch of due rows and returns how many it handled:
// claim (a short transaction that leases the rows and their contacts),
// process outside any transaction, write fenced by the lease.
func (q *QueueWorker) RunOnce(ctx context.Context) (int, error) {
	names := q.senders.Names()
	if len(names) == 0 || ctx.Err() != nil {
		return 0, ctx.Err()
	}
	chans := make([]string, len(names))
	for i, n := range names {
		chans[i] = string(n)
	}
	start := time.Now()
	bctx, cancel := context.WithTimeout(q.hardCtx, q.opts.Lease*3/4)
	defer cancel()
	now := q.now()
	asked := q.limit.next()
	lease, jobs, err := q.claim(bctx, chans, now, asked)
	if err != nil || len(jobs) == 0 {
		if store.Retryable(err) {
			return 0, nil
		}
		return 0, err
	}
	now = q.now() // the contacts are held from here on (see Pipeline.RunOnce)
	wants := make([]want, len(jobs))
	for i, j := range jobs {
		wants[i] = want{ContactID: j.row.ContactID, Channels: []string{j.row.Channel}, Content: map[string]int64{j.row.Channel: j.row.ChannelID}}
	}
	data, err := q.loader.load(bctx, q.db, wants, now)
	if err != nil {
		q.release(lease, jobs)
		return 0, err
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func(j *queueJob) {
			defer wg.Done()
			growStack()
			q.process(bctx, data, j, now)
		}(j)
	}
	wg.Wait()
	q.limit.adapt(asked, len(jobs), time.Since(start))
	wctx, wcancel := context.WithTimeout(context.Background(), max(time.Until(start.Add(q.opts.Lease)), time.Second))
	defer wcancel()
	if err := q.commit(wctx, lease, jobs, now); err != nil {
		q.resetFloor() // the rows come back when their lease ends
		return 0, err
	}
	for _, j := range jobs {
		if q.metrics != nil {
			q.metrics.QueueRows.WithLabelValues(j.row.Channel, j.outcome).Inc()
		}
		q.log.Debug("queue row processed", "queue_id", j.row.ID, "contact_id", j.row.ContactID, "channel", j.row.Channel,
			"event_id", j.row.EventID, "outcome", j.outcome)
	}
	return len(jobs), nil
}

// claim leases due rows and their contacts in one short transaction.
func (q *QueueWorker) claim(ctx context.Context, chans []string, now time.Time, limit int) (store.Lease, []*queueJob, error) {
	lease := store.NewLease()
	tx, err := q.store.BeginTx(ctx)
	if err != nil {
		return lease, nil, fmt.Errorf("claim queue rows: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	from, err := q.scanFrom(ctx, chans)
	if err != nil {
		return lease, nil, err
	}
	if from.IsZero() || from.After(now) {
		return lease, nil, nil // nothing pending, or nothing due yet
	}
	rows, err := q.db.ClaimDueQueueRows(ctx, tx, chans, from, now, limit)
	if err != nil {
		return lease, nil, err
	}
	if len(rows) == 0 {
		q.resetFloor()
		return lease, nil, nil
	}
	contacts := make([]int64, len(rows))
	for i, r := range rows {
		contacts[i] = r.ContactID
	}
	until := now.Add(q.opts.Lease)
	held, err := q.store.LeaseContacts(ctx, tx, contacts, lease, until, now)
	if err != nil {
		return lease, nil, err
	}
	seen := map[int64]bool{}
	var jobs []*queueJob
	var ids []int64
	for _, r := range rows {
		if !held[r.ContactID] || seen[r.ContactID] {
			continue
		}
		seen[r.ContactID] = true
		jobs = append(jobs, &queueJob{row: r, w: newWrites()})
		ids = append(ids, r.ID)
	}
	if err := q.store.LeaseQueueRows(ctx, tx, ids, lease, until); err != nil {
		return lease, nil, err
	}
	if err := tx.Commit(); err != nil {
		return lease, nil, fmt.Errorf("claim queue rows: %w", err)
	}
	if rows[0].ScheduledDate != nil {
		q.advanceFloor(*rows[0].ScheduledDate)
	}
	return lease, jobs, nil
}

// release gives a batch back before anything was sent.
func (q *QueueWorker) release(lease store.Lease, jobs []*queueJob) {
	defer q.resetFloor()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ids := make([]int64, len(jobs))
	contacts := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], contacts[i] = j.row.ID, j.row.ContactID
	}
	tx, err := q.store.BeginTx(ctx)
	if err == nil {
		defer tx.Rollback() //nolint:errcheck // no-op after commit
		if err = q.store.ReleaseQueueRows(ctx, tx, lease, ids, time.Now()); err == nil {
			if err = q.store.ReleaseContacts(ctx, tx, lease, contacts); err == nil {
				err = tx.Commit()
			}
		}
	}
	if err != nil {
		q.log.Warn("could not give a queue batch back; its leases will expire", "err", err)
	}
}

// commit writes a batch's outcome for the rows the lease still holds, and
// ends the batch's row leases, in one transaction fenced by the lease
// (fencedWrite, as the pipeline's); then the contacts are released.
func (q *QueueWorker) commit(ctx context.Context, lease store.Lease, jobs []*queueJob, now time.Time) error {
	ids := make([]int64, len(jobs))
	contacts := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], contacts[i] = j.row.ID, j.row.ContactID
	}
	err := fencedWrite{store: q.store, log: q.log, hard: q.hardCtx, lease: lease, contacts: contacts,
		fence: func(ctx context.Context, tx *sqlx.Tx) (map[int64]bool, error) {
			return q.store.OwnedQueueRows(ctx, tx, lease, ids, time.Now(), q.opts.Lease/8)
		},
		write: func(ctx context.Context, tx *sqlx.Tx, owned map[int64]bool) error {
			var keep []*queueJob
			for _, j := range jobs {
				if owned[j.row.ID] {
					keep = append(keep, j)
				} else {
					q.log.Warn("a queue row's lease ended before its outcome was written", "queue_id", j.row.ID)
				}
			}
			if err := q.write(ctx, tx, keep, now); err != nil {
				return err
			}
			return q.store.ReleaseQueueRows(ctx, tx, lease, ids, time.Now())
		},
	}.run(ctx)
	if err != nil {
		return fmt.Errorf("commit queue batch: %w", err)
	}
	return nil
}

// write applies a batch's outcome in tx, in the pipeline's lock order
// (content counters, stats, then the queue rows).
func (q *QueueWorker) write(ctx context.Context, tx *sqlx.Tx, jobs []*queueJob, now time.Time) error {
	all := newWrites()
	var sent, cancelled, failed []int64
	for _, j := range jobs {
		all.merge(j.w)
		switch j.outcome {
		case "sent":
			sent = append(sent, j.row.ID)
		case "cancelled":
			cancelled = append(cancelled, j.row.ID)
		case "failed":
			failed = append(failed, j.row.ID)
		}
	}
	p := &Pipeline{db: q.db}
	if err := p.applyDNC(ctx, tx, all); err != nil {
		return err
	}
	if err := q.db.MarkQueueSent(ctx, tx, sent, now); err != nil {
		return err
	}
	if err := q.db.MarkQueueCancelled(ctx, tx, cancelled, now); err != nil {
		return err
	}
	if err := q.db.MarkQueueFailed(ctx, tx, failed, now); err != nil {
		return err
	}
	for _, j := range jobs {
		if j.outcome == "rescheduled" {
			if err := q.db.RescheduleQueueRow(ctx, tx, j.row.ID, j.resched, now); err != nil {
				return err
			}
		}
	}
	return p.applySends(ctx, tx, all)
}

// process applies 6.5 to one row: DNC or no address closes it; missing
// content fails it; pause or frequency reschedules it; else it is sent.
func (q *QueueWorker) process(ctx context.Context, b *batchData, j *queueJob, now time.Time) {
	r := j.row
	c, ok := b.contacts[r.ContactID]
	if !ok { // the contact was deleted: FK cascade will remove the row anyway
		j.outcome = "cancelled"
		return
	}
	for _, d := range b.dnc[r.ContactID] {
		if d.Channel == r.Channel {
			j.outcome = "cancelled"
			return
		}
	}
	if !b.contentState(r.Channel, r.ChannelID).OK {
		j.outcome = "failed"
		return
	}
	if !b.hasAddress(c, r.Channel) {
		j.outcome = "cancelled"
		return
	}
	var rule mautic.FrequencyRule
	for _, fr := range mautic.EffectiveRules(b.rules[r.ContactID]) {
		if fr.Channel == r.Channel {
			rule = fr
		}
	}
	st := Step{Channel: r.Channel, ChannelID: r.ChannelID, Frequency: b.frequency[r.Channel][r.ContactID]}
	if rule.PausedAt(now) {
		st.Paused, st.PauseTo = true, *rule.PauseTo
	}
	if st.Paused || st.Frequency.Reached {
		at, lifts := st.LiftsAt()
		if !lifts {
			// A limit of 0 never lifts: Mautic's failure path.
			j.outcome = "failed"
			return
		}
		if !at.After(now) && st.Frequency.Reached {
			// MONTH clamping can keep a send in the window past DATE_ADD.
			at = mautic.LeavesWindowAt(st.Frequency.Oldest, st.Frequency.Limit.Unit)
		}
		j.outcome, j.resched = "rescheduled", at
		return
	}
	sender, ok := q.senders.Get(channels.Name(r.Channel))
	if !ok {
		j.outcome = "failed"
		return
	}
	t := sendTarget{Key: queueKey(r.ID, r.Channel), ContactID: r.ContactID, EventID: r.EventID, Channel: r.Channel, ChannelID: r.ChannelID}
	msg := b.toMessage(t, mautic.NewTrackingHash())
	sctx, cancel := context.WithTimeoutCause(ctx, q.opts.SendTimeout, errors.New("provider call timed out"))
	start := time.Now()
	receipt, err := sender.Send(sctx, msg)
	cancel()
	if q.metrics != nil {
		outcome := "ok"
		if err != nil {
			outcome = channels.KindOf(err).String()
		}
		q.metrics.ProviderLatency.WithLabelValues(r.Channel, outcome).Observe(time.Since(start).Seconds())
	}
	if err == nil {
		j.w.recordSuccess(b, t, msg, receipt, now, 0, r.ID)
		j.outcome = "sent"
		return
	}
	kind := channels.KindOf(err)
	j.w.recordGiveUp(t, msg, kind, err.Error(), now)
	j.outcome = "failed"
	q.log.Info("queued send failed", "queue_id", r.ID, "contact_id", r.ContactID, "channel", r.Channel, "kind", kind.String(), "err", err)
}
