package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// progress is a dispatch's routing state between two runs of the pipeline
// (stored as JSON in sidecar_dispatches.progress).
type progress struct {
	// Round counts routings started over after every channel was exhausted
	// by transient failures (every RerouteEvery, for RerouteFor).
	Round int `json:"round,omitempty"`
	// Done are the channels finished in this round (skipped or failed).
	Done []string `json:"done,omitempty"`
	// Blocked are the channels traced paused or frequency in this round.
	Blocked []string `json:"blocked,omitempty"`
	// Pinned is the channel being retried after a transient failure, Tries
	// the calls already made to it in this round.
	Pinned string `json:"pinned,omitempty"`
	Tries  int    `json:"tries,omitempty"`
	// Exhausted is set when a channel ran out of transient retries.
	Exhausted bool `json:"exhausted,omitempty"`
}

func (p *progress) done(ch string) bool {
	for _, c := range p.Done {
		if c == ch {
			return true
		}
	}
	return false
}

func (p *progress) blocked(ch string) bool {
	for _, c := range p.Blocked {
		if c == ch {
			return true
		}
	}
	return false
}

// Options tune the dispatch pipeline.
type Options struct {
	Workers int
	// BatchSize is the most dispatches one claim asks for (fewer while
	// providers are slow: batchLimit), QueueBatchSize the most
	// message_queue rows.
	BatchSize      int
	QueueBatchSize int
	Lease          time.Duration // bound on one routing transaction
	SendTimeout    time.Duration
	RetryMax       int
	RetryBase      time.Duration
	RetryCap       time.Duration // 1 minute
	RerouteEvery   time.Duration // 5 minutes
	RerouteFor     time.Duration // 24 hours
	IdlePoll       time.Duration // how often an idle worker looks for work
	// FrequencyDefaults are Mautic's global default limits per channel.
	FrequencyDefaults map[string]mautic.Limit
	MessageCacheTTL   time.Duration
}

func (o *Options) setDefaults() {
	if o.Workers < 0 {
		o.Workers = 0
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 128
	}
	if o.QueueBatchSize <= 0 {
		o.QueueBatchSize = 128
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 3
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 2 * time.Second
	}
	if o.RetryCap <= 0 {
		o.RetryCap = time.Minute
	}
	if o.RerouteEvery <= 0 {
		o.RerouteEvery = 5 * time.Minute
	}
	if o.RerouteFor <= 0 {
		o.RerouteFor = 24 * time.Hour
	}
	if o.IdlePoll <= 0 {
		o.IdlePoll = 100 * time.Millisecond
	}
}

// Pipeline routes accepted dispatches: it claims them, loads their data,
// decides, sends, and commits the stats with the dispatch's new state.
type Pipeline struct {
	db      *mautic.DB
	store   *store.DB
	senders *channels.Registry
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	loader  *loader
	now     func() time.Time
	wake    chan struct{}
	limit   *batchLimit

	hardCtx  context.Context // cancelled when in-flight work must stop
	hardStop context.CancelFunc
}

// NewPipeline builds the dispatch pipeline.
func NewPipeline(db *mautic.DB, st *store.DB, senders *channels.Registry, log *slog.Logger, m *Metrics, opts Options) *Pipeline {
	opts.setDefaults()
	hard, stop := context.WithCancel(context.Background())
	p := &Pipeline{
		db: db, store: st, senders: senders, log: log, metrics: m, opts: opts,
		loader: &loader{db: db, senders: senders, defaults: opts.FrequencyDefaults,
			msgCache: newMessageCache(db, opts.MessageCacheTTL), hasTweets: true},
		now:     func() time.Time { return time.Now().UTC() },
		wake:    make(chan struct{}, 1),
		hardCtx: hard, hardStop: stop,
	}
	p.limit = newBatchLimit("dispatch", opts.BatchSize, opts.Lease, log, m)
	return p
}

// SetTweets tells whether Mautic's tweet tables exist.
func (p *Pipeline) SetTweets(ok bool) { p.loader.hasTweets = ok }

// Wake tells an idle worker that work has arrived.
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run starts the workers and blocks until ctx is done and every worker has
// finished its current batch (see Abort for the bound).
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < p.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.work(ctx)
		}()
	}
	wg.Wait()
}

// Abort cancels in-flight batches: their transactions roll back and their
// dispatches stay accepted for another worker or replica.
func (p *Pipeline) Abort() { p.hardStop() }

func (p *Pipeline) work(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		n, err := p.RunOnce(ctx)
		if err != nil {
			failures++
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("dispatch batch failed", "err", err, "attempt", failures)
			}
			p.sleep(ctx, backoffDelay(failures, 100*time.Millisecond, 5*time.Second))
			continue
		}
		failures = 0
		if n == 0 {
			p.sleep(ctx, p.opts.IdlePoll)
		}
	}
}

func (p *Pipeline) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-p.wake:
	case <-t.C:
	}
}

// job is one dispatch being routed in a batch.
type job struct {
	d       store.Dispatch
	prog    progress
	trace   []TraceEntry
	msg     mautic.Message
	found   bool
	w       *writes
	enqueue *queueRequest
	final   store.Dispatch // as written
}

// queueRequest asks the write phase to queue a deferred send.
type queueRequest struct {
	step Step
	at   time.Time
}

// RunOnce routes one batch: claim (a short transaction that leases the
// dispatches and their contacts), load, decide and send outside any
// transaction, then write the outcome in a transaction fenced by the lease.
// It returns how many dispatches it handled.
func (p *Pipeline) RunOnce(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	start := time.Now()
	now := p.now()
	// Sending must end well before the lease does, so that the writes land
	// while the lease still fences them.
	bctx, cancel := context.WithTimeout(p.hardCtx, p.opts.Lease*3/4)
	defer cancel()
	asked := p.limit.next()
	lease, claimed, err := p.store.ClaimBatch(bctx, now, asked, p.opts.Lease)
	if err != nil || len(claimed) == 0 {
		if store.Retryable(err) {
			return 0, nil // another claim won the race: nothing was taken
		}
		return 0, err
	}
	if p.metrics != nil {
		p.metrics.ClaimLag.Set(max(now.Sub(claimed[0].RunAt), 0).Seconds())
	}
	// The contacts are held from here on. The claim may have waited for
	// another batch's write on one of them: route as of now, not as of
	// before the claim.
	now = p.now()
	jobs := make([]*job, 0, len(claimed))
	wants := make([]want, 0, len(claimed))
	for _, d := range claimed {
		j := &job{d: d, w: newWrites()}
		if len(d.Progress) > 0 {
			if err := json.Unmarshal(d.Progress, &j.prog); err != nil {
				p.log.Warn("corrupt dispatch progress, starting over", "dispatch_id", d.ID, "err", err)
				j.prog = progress{}
			}
		}
		if err := json.Unmarshal(d.Trace, &j.trace); err != nil {
			j.trace = nil
		}
		jobs = append(jobs, j)
		wants = append(wants, want{ContactID: d.ContactID, MessageID: d.MessageID})
	}
	data, err := p.loader.load(bctx, p.db, wants, now)
	if err != nil {
		p.abandon(lease, jobs, now)
		return 0, err
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		j.msg, j.found = data.messages[j.d.MessageID]
		wg.Add(1)
		go func(j *job) {
			defer wg.Done()
			growStack()
			p.route(bctx, data, j, now)
		}(j)
	}
	wg.Wait()
	p.limit.adapt(asked, len(claimed), time.Since(start))
	// The writes must land even when the stop is hard: the sends happened.
	wctx, wcancel := context.WithTimeout(context.Background(), max(time.Until(start.Add(p.opts.Lease)), time.Second))
	defer wcancel()
	if err := p.commit(wctx, lease, jobs, now); err != nil {
		return 0, err
	}
	p.observe(jobs, time.Since(start))
	return len(jobs), nil
}

// abandon gives a batch back before anything was sent.
func (p *Pipeline) abandon(lease store.Lease, jobs []*job, now time.Time) {
	ids := make([]int64, len(jobs))
	contacts := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], contacts[i] = j.d.ID, j.d.ContactID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.store.Abandon(ctx, lease, ids, contacts, now); err != nil {
		p.log.Warn("could not give a batch back; its leases will expire", "err", err)
	}
}

// route walks the plan of one dispatch: skip, send, fall through (DESIGN.md
// section 6 item 5). It records what to write in j and decides the state;
// queueing (item 6) is finished in the write phase.
func (p *Pipeline) route(ctx context.Context, b *batchData, j *job, now time.Time) {
	if !j.found {
		j.trace = append(j.trace, TraceEntry{Channel: "", Decision: DecisionFailedPermanent, Reason: ReasonNoContent,
			Detail: fmt.Sprintf("marketing message %d no longer exists", j.d.MessageID)})
		j.fail()
		return
	}
	if _, ok := b.contacts[j.d.ContactID]; !ok {
		j.trace = append(j.trace, TraceEntry{Channel: "", Decision: DecisionFailedPermanent, Reason: ReasonNoAddress,
			Detail: fmt.Sprintf("contact %d no longer exists", j.d.ContactID)})
		j.fail()
		return
	}
	plan := Decide(p.loader.facts(b, j.d.ContactID, j.msg))
	resuming := j.prog.Pinned != ""
	if !resuming && len(j.prog.Done) == 0 {
		j.trace = append(j.trace, plan.Excluded...)
	}
	for _, s := range plan.Steps {
		if j.prog.done(s.Channel) {
			continue
		}
		if j.prog.Pinned != "" && j.prog.Pinned != s.Channel {
			// Channels before the one being retried were finished earlier
			// in this round (their trace is already written).
			continue
		}
		if !s.Eligible() {
			j.trace = append(j.trace, s.skipEntry())
			j.prog.Done = append(j.prog.Done, s.Channel)
			if s.Skip == ReasonPaused || s.Skip == ReasonFrequency {
				j.prog.Blocked = append(j.prog.Blocked, s.Channel)
			}
			j.prog.Pinned, j.prog.Tries = "", 0
			if p.metrics != nil {
				p.metrics.Skips.WithLabelValues(s.Channel, string(s.Skip)).Inc()
			}
			continue
		}
		if p.attempt(ctx, b, j, s, now) {
			return
		}
	}
	// Nothing sent in this round.
	var blocked []Step
	for _, s := range plan.Steps {
		if j.prog.blocked(s.Channel) {
			blocked = append(blocked, s)
		}
	}
	if s, at, ok := QueueTarget(blocked); ok {
		j.enqueue = &queueRequest{step: s, at: at}
		return
	}
	if j.prog.Exhausted {
		if now.Sub(j.d.CreatedAt) >= p.opts.RerouteFor {
			j.trace = append(j.trace, TraceEntry{Decision: DecisionFailedPermanent, Reason: ReasonProviderTransientExhausted,
				Detail: fmt.Sprintf("providers kept failing for %s", p.opts.RerouteFor)})
			j.fail()
			return
		}
		// Route the whole dispatch again later: a provider outage loses nothing.
		j.prog = progress{Round: j.prog.Round + 1}
		j.d.RunAt = now.Add(p.opts.RerouteEvery)
		return
	}
	j.fail()
}

func (j *job) fail() {
	j.d.State, j.d.Channel, j.d.ChannelID, j.d.QueueID = store.Failed, "", 0, 0
}

// attempt calls the sender of one eligible step. It returns true when the
// dispatch is done for this run (sent, or waiting for a retry).
func (p *Pipeline) attempt(ctx context.Context, b *batchData, j *job, s Step, now time.Time) bool {
	sender, ok := p.senders.Get(channels.Name(s.Channel))
	if !ok { // Decide only plans channels with senders.
		return false
	}
	var props []byte
	for _, mc := range j.msg.Channels {
		if mc.Channel == s.Channel {
			props = mc.Properties
		}
	}
	t := sendTarget{Key: dispatchKey(j.d.ID, s.Channel), ContactID: j.d.ContactID, MessageID: j.d.MessageID,
		CampaignID: j.d.CampaignID, EventID: j.d.EventID, Channel: s.Channel, ChannelID: s.ChannelID, Properties: props}
	msg := b.toMessage(t, mautic.NewTrackingHash())
	sctx, cancel := context.WithTimeoutCause(ctx, p.opts.SendTimeout, errors.New("provider call timed out"))
	start := time.Now()
	receipt, err := sender.Send(sctx, msg)
	cancel()
	if !errors.Is(err, channels.ErrNotSent) {
		// attempts counts provider calls (DESIGN.md 6.6): not a send an
		// open breaker or the rate limit refused.
		j.d.Attempts++
		p.observeSend(s.Channel, err, time.Since(start))
	}
	if err == nil {
		if receipt.SentAt.IsZero() {
			receipt.SentAt = now
		}
		j.trace = append(j.trace, TraceEntry{Channel: s.Channel, Decision: DecisionSent, Detail: providerDetail(receipt)})
		j.w.recordSuccess(b, t, msg, receipt, now, j.d.ID, 0)
		j.d.State, j.d.Channel, j.d.ChannelID = store.Sent, s.Channel, s.ChannelID
		return true
	}
	kind := channels.KindOf(err)
	errText := err.Error()
	if kind != channels.KindTransient {
		j.trace = append(j.trace, TraceEntry{Channel: s.Channel, Decision: DecisionFailedPermanent, Reason: ReasonProviderPermanent,
			Detail: errText})
		j.w.recordGiveUp(t, msg, kind, errText, now)
		j.prog.Done = append(j.prog.Done, s.Channel)
		j.prog.Pinned, j.prog.Tries = "", 0
		p.log.Info("provider refused, falling through", "dispatch_id", j.d.ID, "contact_id", j.d.ContactID,
			"channel", s.Channel, "kind", kind.String(), "err", errText)
		return false
	}
	tries := 1
	if j.prog.Pinned == s.Channel {
		tries = j.prog.Tries + 1
	}
	retryAfter := channels.RetryAfterOf(err)
	if tries < p.opts.RetryMax && retryAfter <= p.opts.RetryCap {
		delay := backoffDelay(tries, p.opts.RetryBase, p.opts.RetryCap)
		if retryAfter > delay {
			delay = retryAfter
		}
		j.trace = append(j.trace, TraceEntry{Channel: s.Channel, Decision: DecisionFailedTransient, Reason: ReasonProviderTransient,
			Detail: fmt.Sprintf("%s (try %d of %d, next in %s)", errText, tries, p.opts.RetryMax, delay.Round(time.Millisecond))})
		j.prog.Pinned, j.prog.Tries = s.Channel, tries
		j.d.RunAt = now.Add(delay)
		p.log.Warn("provider failed, will retry", "dispatch_id", j.d.ID, "contact_id", j.d.ContactID, "channel", s.Channel,
			"attempt", tries, "err", errText)
		return true
	}
	detail := fmt.Sprintf("%s (try %d of %d)", errText, tries, p.opts.RetryMax)
	if retryAfter > p.opts.RetryCap {
		detail = fmt.Sprintf("%s (provider asks to wait %s, more than %s)", errText, retryAfter, p.opts.RetryCap)
	}
	j.trace = append(j.trace, TraceEntry{Channel: s.Channel, Decision: DecisionFailedTransient, Reason: ReasonProviderTransientExhausted,
		Detail: detail})
	j.w.recordGiveUp(t, msg, channels.KindTransient, errText, now)
	j.prog.Done = append(j.prog.Done, s.Channel)
	j.prog.Pinned, j.prog.Tries, j.prog.Exhausted = "", 0, true
	return false
}

func providerDetail(r channels.Receipt) string {
	if r.ProviderID == "" {
		return ""
	}
	return "provider id " + r.ProviderID
}

// backoffDelay is the exponential backoff before try n+1: base·2^(n−1),
// capped, with jitter in [d/2, d].
func backoffDelay(n int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	if d > limit {
		d = limit
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// commit writes everything a batch produced, in one transaction fenced by
// the batch's lease (fencedWrite): only the dispatches the lease still
// holds are written, together with their stats, counters and queue rows,
// and the contacts are released.
func (p *Pipeline) commit(ctx context.Context, lease store.Lease, jobs []*job, now time.Time) error {
	ids := make([]int64, len(jobs))
	contacts := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i], contacts[i] = j.d.ID, j.d.ContactID
	}
	err := fencedWrite{store: p.store, log: p.log, hard: p.hardCtx, lease: lease, contacts: contacts,
		fence: func(ctx context.Context, tx *sqlx.Tx) (map[int64]bool, error) {
			return p.store.Owned(ctx, tx, lease, ids, time.Now(), p.opts.Lease/8)
		},
		write: func(ctx context.Context, tx *sqlx.Tx, owned map[int64]bool) error {
			keep := jobs[:0:0]
			for _, j := range jobs {
				if owned[j.d.ID] {
					keep = append(keep, j)
					continue
				}
				p.log.Warn("a dispatch's lease ended before its outcome was written; another worker took it over",
					"dispatch_id", j.d.ID, "contact_id", j.d.ContactID)
			}
			return p.write(ctx, tx, keep, now)
		},
	}.run(ctx)
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	return nil
}

// write runs the write phase in tx, after the fence locked the batch's
// dispatches: the contact's rows (DNC, message_queue), the dispatches, then
// the sends (applySends).
func (p *Pipeline) write(ctx context.Context, tx *sqlx.Tx, jobs []*job, now time.Time) error {
	all := newWrites()
	for _, j := range jobs {
		all.merge(j.w)
	}
	if err := p.applyDNC(ctx, tx, all); err != nil {
		return err
	}
	list := make([]store.Dispatch, 0, len(jobs))
	for _, j := range jobs {
		d, trace := j.d, j.trace
		if j.enqueue != nil {
			q, err := p.enqueue(ctx, tx, j, now)
			if err != nil {
				return err
			}
			trace = append(append([]TraceEntry(nil), trace...), q.entry)
			d.State, d.Channel, d.ChannelID, d.QueueID = store.Queued, q.step.Channel, q.step.ChannelID, q.id
		}
		tr, err := json.Marshal(trace)
		if err != nil {
			return fmt.Errorf("encode trace: %w", err)
		}
		d.Trace = tr
		if d.State != store.Accepted {
			d.Progress = nil
		} else {
			if d.RunAt.Before(now) {
				d.RunAt = now
			}
			pr, err := json.Marshal(j.prog)
			if err != nil {
				return fmt.Errorf("encode progress: %w", err)
			}
			d.Progress = pr
		}
		j.final = d
		list = append(list, d)
	}
	sort.Slice(list, func(a, c int) bool { return list[a].ID < list[c].ID })
	if err := p.store.Save(ctx, tx, list, now); err != nil {
		return err
	}
	return p.applySends(ctx, tx, all)
}

// applySends writes the counter increments, the copies and the stats. The
// increments go to sidecar_counter_deltas, applied to Mautic's counters by
// the flusher (App.FlushCounters): a routing transaction never locks a
// content row exclusively, so the sends of one email do not wait for each
// other, and the stats' foreign-key checks (shared locks) cannot deadlock.
func (p *Pipeline) applySends(ctx context.Context, tx *sqlx.Tx, w *writes) error {
	if err := p.applyCounters(ctx, tx, w); err != nil {
		return err
	}
	return p.applyStats(ctx, tx, w)
}

// queued is the outcome of DESIGN.md 6 item 6 for one job.
type queued struct {
	step  Step
	id    int64
	entry TraceEntry
}

// enqueue finishes DESIGN.md 6 item 6 for one job: Mautic's queue dedup
// (an existing pending row for the contact, channel and content is reused,
// unchanged) or a new message_queue row. The row's event_id references
// campaign_events: an event id Mautic does not know is left out rather than
// failing the batch.
func (p *Pipeline) enqueue(ctx context.Context, tx *sqlx.Tx, j *job, now time.Time) (queued, error) {
	s, at := j.enqueue.step, j.enqueue.at
	row, ok, err := p.db.PendingQueueRow(ctx, tx, j.d.ContactID, s.Channel, s.ChannelID)
	if err != nil {
		return queued{}, err
	}
	if ok {
		return queued{step: s, id: row.ID, entry: TraceEntry{Channel: s.Channel, Decision: DecisionQueued,
			Detail: fmt.Sprintf("already queued as message_queue %d", row.ID)}}, nil
	}
	eventID := j.d.EventID
	if eventID > 0 {
		known, err := p.db.EventExists(ctx, tx, eventID)
		if err != nil {
			return queued{}, err
		}
		if !known {
			eventID = 0
		}
	}
	id, err := p.db.Enqueue(ctx, tx, mautic.NewQueueRow{Channel: s.Channel, ChannelID: s.ChannelID, EventID: eventID,
		ContactID: j.d.ContactID, ScheduledDate: at, Now: now})
	if err != nil {
		return queued{}, err
	}
	return queued{step: s, id: id, entry: TraceEntry{Channel: s.Channel, Decision: DecisionQueued,
		Detail: fmt.Sprintf("message_queue %d, scheduled %s UTC", id, at.UTC().Format("2006-01-02 15:04:05"))}}, nil
}

func (p *Pipeline) applyStats(ctx context.Context, tx *sqlx.Tx, w *writes) error {
	if err := p.db.InsertEmailCopies(ctx, tx, w.emailCopies); err != nil {
		return err
	}
	if err := p.db.InsertEmailStats(ctx, tx, w.emailStats); err != nil {
		return err
	}
	if err := p.db.InsertSMSStats(ctx, tx, w.smsStats); err != nil {
		return err
	}
	if err := p.db.InsertPushStats(ctx, tx, w.pushStats); err != nil {
		return err
	}
	if err := p.db.InsertTweetStats(ctx, tx, w.tweetStats); err != nil {
		return err
	}
	return p.db.InsertCustomSends(ctx, tx, w.custom)
}

// applyDNC writes the do-not-contact rows of a batch.
func (p *Pipeline) applyDNC(ctx context.Context, tx *sqlx.Tx, w *writes) error {
	for _, d := range w.dnc {
		if _, err := p.db.AddDoNotContact(ctx, tx, d); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pipeline) applyCounters(ctx context.Context, tx *sqlx.Tx, w *writes) error {
	var deltas []mautic.CounterDelta
	add := func(table string, counts map[int64]int) {
		for id, n := range counts {
			deltas = append(deltas, mautic.CounterDelta{Table: table, ContentID: id, Delta: n})
		}
	}
	add(mautic.CounterEmails, w.emailSent)
	add(mautic.CounterSMS, w.smsSent)
	add(mautic.CounterPush, w.pushSent)
	add(mautic.CounterTweets, w.tweetSent)
	return p.db.AddCounterDeltas(ctx, tx, deltas, time.Now())
}

func (p *Pipeline) observeSend(channel string, err error, d time.Duration) {
	if p.metrics == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = channels.KindOf(err).String()
	}
	p.metrics.ProviderLatency.WithLabelValues(channel, outcome).Observe(d.Seconds())
}

func (p *Pipeline) observe(jobs []*job, took time.Duration) {
	for _, j := range jobs {
		d := j.final
		if d.ID == 0 || d.State == store.Accepted {
			continue
		}
		if p.metrics != nil {
			p.metrics.Dispatches.WithLabelValues(d.State, d.Channel).Inc()
		}
		p.log.Info("dispatch routed", "dispatch_id", d.ID, "contact_id", d.ContactID, "campaign_id", d.CampaignID,
			"event_id", d.EventID, "state", d.State, "channel", d.Channel, "attempts", d.Attempts)
	}
	if p.metrics != nil {
		p.metrics.BatchDuration.Observe(took.Seconds())
	}
}
