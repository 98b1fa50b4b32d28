package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// Intake outcomes other than success.
var (
	errUnknownContact = errors.New("unknown contact")
	errUnknownMessage = errors.New("unknown message")
	errNoCandidate    = errors.New("no candidate channel")
	errBacklogFull    = errors.New("backlog over its limit")
	errUnavailable    = errors.New("database unavailable")
	errStopping       = errors.New("shutting down")
)

// intakeResult is the answer for one request.
type intakeResult struct {
	ID        int64
	Duplicate bool
	Err       error
	Detail    string
}

type intakeReq struct {
	r    Request
	done chan intakeResult
}

// Intake records campaign webhook calls durably. Concurrent requests are
// grouped into one transaction (one commit for many 200s); a request is
// answered only after its transaction committed.
type Intake struct {
	db         *mautic.DB
	store      *store.DB
	senders    *channels.Registry
	cache      *messageCache
	log        *slog.Logger
	metrics    *Metrics
	window     time.Duration
	maxBacklog int64
	maxBatch   int
	onAccept   func()
	now        func() time.Time

	reqs    chan *intakeReq
	backlog atomic.Int64
	wg      sync.WaitGroup
	// closeMu orders Close after every Submit already sending to reqs
	// (read-locked by Submit), so reqs is never sent to once closed.
	closeMu sync.RWMutex
	closed  bool
}

// IntakeOptions tune the intake.
type IntakeOptions struct {
	DedupWindow     time.Duration
	MaxBacklog      int
	Writers         int // concurrent intake transactions (default 1: the biggest batches)
	MaxBatch        int // requests per transaction (default 256)
	MessageCacheTTL time.Duration
	// OnAccept is called after new dispatches commit (wakes the workers).
	OnAccept func()
}

// NewIntake builds the intake; Start runs its writers.
func NewIntake(db *mautic.DB, st *store.DB, senders *channels.Registry, log *slog.Logger, m *Metrics, o IntakeOptions) *Intake {
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxBacklog <= 0 {
		o.MaxBacklog = 100000
	}
	in := &Intake{db: db, store: st, senders: senders, cache: newMessageCache(db, o.MessageCacheTTL), log: log, metrics: m,
		window: o.DedupWindow, maxBacklog: int64(o.MaxBacklog), maxBatch: o.MaxBatch, onAccept: o.OnAccept,
		now: func() time.Time { return time.Now().UTC() }, reqs: make(chan *intakeReq, 4096)}
	in.wg.Add(o.Writers)
	for i := 0; i < o.Writers; i++ {
		go in.writer()
	}
	return in
}

// Submit records r and waits for the outcome. The work continues even if
// ctx ends: a request that reached the database is never half-recorded.
func (in *Intake) Submit(ctx context.Context, r Request) intakeResult {
	req := &intakeReq{r: r, done: make(chan intakeResult, 1)}
	in.closeMu.RLock()
	if in.closed {
		in.closeMu.RUnlock()
		return intakeResult{Err: errStopping}
	}
	select {
	case in.reqs <- req:
		in.closeMu.RUnlock()
	case <-ctx.Done():
		in.closeMu.RUnlock()
		return intakeResult{Err: ctx.Err()}
	}
	return <-req.done
}

// Close stops the writers after the requests already submitted; a Submit
// that comes later answers errStopping.
func (in *Intake) Close() {
	in.closeMu.Lock()
	if in.closed {
		in.closeMu.Unlock()
		return
	}
	in.closed = true
	close(in.reqs)
	in.closeMu.Unlock()
	in.wg.Wait()
}

// Backlog returns the last known number of accepted dispatches.
func (in *Intake) Backlog() int64 { return in.backlog.Load() }

// RefreshBacklog re-reads the number of accepted dispatches.
func (in *Intake) RefreshBacklog(ctx context.Context) error {
	n, err := in.store.Backlog(ctx)
	if err != nil {
		return err
	}
	in.backlog.Store(n)
	if in.metrics != nil {
		in.metrics.Backlog.Set(float64(n))
	}
	return nil
}

func (in *Intake) writer() {
	defer in.wg.Done()
	for first := range in.reqs {
		batch := []*intakeReq{first}
	fill:
		for len(batch) < in.maxBatch {
			select {
			case r, ok := <-in.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		in.process(batch)
	}
}

// process validates and records one batch. The common batch (every
// message known and sendable, room in the backlog) is recorded with its
// contacts checked inside the same transaction (store.AcceptKnown), one
// round trip; any other batch, or one with an unknown contact, takes the
// full path, which reads the contacts first and answers each request.
func (in *Intake) process(batch []*intakeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fail := func(reqs []*intakeReq, err error, detail string) {
		for _, r := range reqs {
			r.done <- intakeResult{Err: err, Detail: detail}
		}
	}
	contactIDs := make([]int64, 0, len(batch))
	messageIDs := make([]int64, 0, len(batch))
	for _, r := range batch {
		contactIDs = append(contactIDs, r.r.ContactID)
		messageIDs = append(messageIDs, r.r.MessageID)
	}
	msgs, err := in.cache.get(ctx, in.db, messageIDs)
	if err != nil {
		in.log.Error("intake: database unavailable", "err", err)
		fail(batch, errUnavailable, "")
		return
	}
	if in.sendable(batch, msgs) && in.backlog.Load()+int64(len(batch)) <= in.maxBacklog {
		err := in.record(ctx, batch, true)
		if !errors.Is(err, store.ErrUnknownContact) {
			if err != nil {
				fail(batch, errUnavailable, "")
			}
			return
		}
	}
	exists, err := in.db.ExistingContacts(ctx, in.db, contactIDs)
	if err != nil {
		in.log.Error("intake: database unavailable", "err", err)
		fail(batch, errUnavailable, "")
		return
	}
	var ok []*intakeReq
	for _, r := range batch {
		m, found := msgs[r.r.MessageID]
		switch {
		case !exists[r.r.ContactID]:
			r.done <- intakeResult{Err: errUnknownContact, Detail: fmt.Sprintf("contact %d does not exist", r.r.ContactID)}
		case !found:
			r.done <- intakeResult{Err: errUnknownMessage, Detail: fmt.Sprintf("marketing message %d does not exist", r.r.MessageID)}
		case len(candidates(m, in.senders)) == 0:
			r.done <- intakeResult{Err: errNoCandidate, Detail: fmt.Sprintf(
				"marketing message %d has no enabled channel with content and a configured sender", r.r.MessageID)}
		default:
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return
	}
	// Up to the limit, not all or nothing: the calls of a batch that fit
	// are accepted, the rest answered 429.
	if backlog := in.backlog.Load(); backlog+int64(len(ok)) > in.maxBacklog {
		room := int(max(in.maxBacklog-backlog, 0))
		fail(ok[room:], errBacklogFull, fmt.Sprintf("%d dispatches are waiting (limit %d)", backlog, in.maxBacklog))
		if ok = ok[:room]; len(ok) == 0 {
			return
		}
	}
	if err := in.record(ctx, ok, false); err != nil {
		fail(ok, errUnavailable, "")
	}
}

// sendable reports whether every request of batch names a known message
// with a candidate channel.
func (in *Intake) sendable(batch []*intakeReq, msgs map[int64]mautic.Message) bool {
	checked := make(map[int64]bool, 4)
	for _, r := range batch {
		if checked[r.r.MessageID] {
			continue
		}
		m, found := msgs[r.r.MessageID]
		if !found || len(candidates(m, in.senders)) == 0 {
			return false
		}
		checked[r.r.MessageID] = true
	}
	return true
}

// record writes the dispatches of reqs and answers each request, unless it
// fails: then nobody is answered and nothing was written. known checks the
// contacts in the same transaction (store.ErrUnknownContact).
func (in *Intake) record(ctx context.Context, reqs []*intakeReq, known bool) error {
	news := make([]store.NewDispatch, len(reqs))
	for i, r := range reqs {
		news[i] = store.NewDispatch{ContactID: r.r.ContactID, MessageID: r.r.MessageID, CampaignID: r.r.CampaignID,
			EventID: r.r.EventID, IdempotencyKey: r.r.IdempotencyKey,
			Key: store.KeyFor(r.r.IdempotencyKey, r.r.CampaignID, r.r.EventID, r.r.MessageID, r.r.ContactID)}
	}
	accept := in.store.Accept
	if known {
		accept = in.store.AcceptKnown
	}
	res, err := accept(ctx, news, in.now(), in.window)
	if err != nil {
		if !errors.Is(err, store.ErrUnknownContact) {
			in.log.Error("intake: could not record dispatches", "err", err, "requests", len(reqs))
		}
		return err
	}
	added := 0
	for i, r := range reqs {
		if !res[i].Duplicate {
			added++
		}
		r.done <- intakeResult{ID: res[i].ID, Duplicate: res[i].Duplicate}
	}
	in.backlog.Add(int64(added))
	if in.metrics != nil {
		in.metrics.IntakeBatch.Observe(float64(len(reqs)))
		in.metrics.Intake.WithLabelValues("accepted").Add(float64(added))
		in.metrics.Intake.WithLabelValues("duplicate").Add(float64(len(reqs) - added))
	}
	if added > 0 && in.onAccept != nil {
		in.onAccept()
	}
	return nil
}
