package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// TestThreeReplicasNeverExceedALimit: 3 pipeline instances on one database,
// 50 concurrent dispatches for one contact whose email limit is 1 a DAY and
// SMS limit 10 a DAY: exactly one email and ten SMS are sent; the rest queue.
func TestThreeReplicasNeverExceedALimit(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})
	id := h.contact(seed.Contact{Email: "busy@example.test", Mobile: "+15550004001"})
	h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(1, mautic.Day)})
	h.rule(seed.Rule{ContactID: id, Channel: "sms", Limit: lim(10, mautic.Day)})

	replicas := []*App{h.app, h.newApp(), h.newApp()}
	for _, a := range replicas {
		a.Start()
	}
	t.Cleanup(func() {
		for _, a := range replicas[1:] {
			a.Stop(5 * time.Second)
		}
	})
	h.started = true

	var wg sync.WaitGroup
	ids := make([]int64, 50)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, body := h.post(map[string]string{"contact_id": itoa(id), "message_id": itoa(msg), "idempotency_key": fmt.Sprintf("k%d", i)})
			if code == http.StatusOK {
				ids[i] = int64(body["dispatch_id"].(float64))
			}
		}(i)
	}
	wg.Wait()
	states := map[string]int{}
	queueIDs := map[int64]bool{}
	for _, did := range ids {
		require.NotZero(t, did)
		d := h.wait(did)
		states[d.State+":"+deref(d.Channel)]++
		if d.Queue != nil {
			queueIDs[d.Queue.ID] = true
		}
	}
	require.Equal(t, map[string]int{"sent:email": 1, "sent:sms": 10, "queued:sms": 39}, states)
	require.Len(t, h.rec["email"].Messages(), 1)
	require.Len(t, h.rec["sms"].Messages(), 10)
	require.Equal(t, 1, h.db.Count(t, "email_stats", "lead_id = ?", id))
	require.Equal(t, 10, h.db.Count(t, "sms_message_stats", "lead_id = ?", id))
	require.Len(t, queueIDs, 1, "Mautic's queue dedup: one pending row, every queued dispatch points at it")
	require.Equal(t, 1, h.db.Count(t, "message_queue", "lead_id = ?", id))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestLeaseExpiry: a worker stuck in a send (it never returns and never
// cleans up) loses its claim when its lease ends; another worker completes
// the dispatch, and the stuck one cannot record anything afterwards.
func TestLeaseExpiry(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	id := h.contact(seed.Contact{Email: "stuck@example.test"})
	did := h.dispatch(id, msg)

	entered := make(chan struct{})
	release := make(chan struct{})
	stuckReg := channels.NewRegistry()
	require.NoError(t, stuckReg.Add("email", channels.SenderFunc(func(ctx context.Context, m channels.Message) (channels.Receipt, error) {
		close(entered)
		<-release // ignores ctx: a hung worker
		return channels.Receipt{ProviderID: "late"}, nil
	})))
	stuck := New(Config{Token: testToken, Pipeline: testOptions()}, h.db.Mautic, stuckReg, h.app.log.With("worker", "stuck"), nil)
	stuck.pipeline.opts.Lease = 1 * time.Second
	stuckDone := make(chan error, 1)
	go func() {
		_, err := stuck.pipeline.RunOnce(h.ctx)
		stuckDone <- err
	}()
	<-entered

	// While the lease holds, the dispatch is invisible to other workers.
	n, err := h.app.pipeline.RunOnce(h.ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	deadline := time.Now().Add(20 * time.Second)
	for h.get(did).State == store.Accepted && time.Now().Before(deadline) {
		_, err := h.app.pipeline.RunOnce(h.ctx)
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
	}
	d := h.get(did)
	require.Equal(t, "sent", d.State, "another worker completed the dispatch")
	require.Len(t, h.rec["email"].Messages(), 1)

	close(release)
	require.NoError(t, <-stuckDone)
	require.Contains(t, h.logs.String(), "lease ended before its outcome was written")
	require.Equal(t, 1, h.db.Count(t, "email_stats", "lead_id = ?", id), "only one stat: the late worker's writes are fenced off")
	require.Equal(t, "sent", h.get(did).State)
}

func TestQueueWorker(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	_, eventID, err := h.s.Campaign(h.ctx, "c")
	require.NoError(t, err)
	m := h.db.Mautic
	now := time.Now().UTC().Truncate(time.Second)
	due := now.Add(-time.Minute)
	enqueue := func(contact int64, ch string, chID, event int64, at time.Time) int64 {
		id, err := m.Enqueue(h.ctx, m, mautic.NewQueueRow{Channel: ch, ChannelID: chID, EventID: event, ContactID: contact, ScheduledDate: at, Now: now})
		require.NoError(t, err)
		return id
	}
	unpub, err := h.s.SMS(h.ctx, seed.SMS{Message: "x", Unpublished: true})
	require.NoError(t, err)

	plain := h.contact(seed.Contact{Email: "q1@example.test"})
	qPlain := enqueue(plain, "email", c.email, 0, due)
	fromEvent := h.contact(seed.Contact{Mobile: "+15550005002"})
	qEvent := enqueue(fromEvent, "sms", c.sms, eventID, due)
	dncd := h.contact(seed.Contact{Email: "q3@example.test"})
	_, err = h.s.DNC(h.ctx, dncd, "email", mautic.DNCManual)
	require.NoError(t, err)
	qDNC := enqueue(dncd, "email", c.email, 0, due)
	noAddr := h.contact(seed.Contact{})
	qNoAddr := enqueue(noAddr, "sms", c.sms, 0, due)
	unpublished := h.contact(seed.Contact{Mobile: "+15550005005"})
	qUnpub := enqueue(unpublished, "sms", unpub, 0, due)
	limited := h.contact(seed.Contact{Email: "q6@example.test"})
	h.rule(seed.Rule{ContactID: limited, Channel: "email", Limit: lim(1, mautic.Week)})
	sentAt := now.Add(-time.Hour)
	require.NoError(t, h.s.EmailStat(h.ctx, limited, c.email, sentAt))
	qLimited := enqueue(limited, "email", c.email, 0, due)
	paused := h.contact(seed.Contact{Mobile: "+15550005007"})
	pauseTo := now.Add(48 * time.Hour)
	pauseFrom := now.Add(-time.Hour)
	h.rule(seed.Rule{ContactID: paused, Channel: "sms", PauseFrom: &pauseFrom, PauseTo: &pauseTo})
	qPaused := enqueue(paused, "sms", c.sms, 0, due)
	bounce := h.contact(seed.Contact{Email: "q8@example.test"})
	h.rec["email"].Fail("q8@example.test", channelstest.Failure{Kind: channels.KindUnreachable})
	qBounce := enqueue(bounce, "email", c.email, 0, due)
	later := h.contact(seed.Contact{Email: "q9@example.test"})
	qLater := enqueue(later, "email", c.email, 0, now.Add(time.Hour))
	noSender := h.contact(seed.Contact{Email: "q10@example.test"})
	qNoSender := enqueue(noSender, "line", 1, 0, due)

	for i := 0; i < 10; i++ {
		n, err := h.app.queue.RunOnce(h.ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	rows, err := m.QueueRows(h.ctx, m, []int64{qPlain, qEvent, qDNC, qNoAddr, qUnpub, qLimited, qPaused, qBounce, qLater, qNoSender})
	require.NoError(t, err)
	check := func(id int64, status string, success bool, attempts int) mautic.QueueRow {
		t.Helper()
		r := rows[id]
		require.Equal(t, []any{status, success, attempts}, []any{r.Status, r.Success, r.Attempts}, "queue row %d", id)
		return r
	}
	r := check(qPlain, "sent", true, 0)
	require.NotNil(t, r.DateSent)
	require.Equal(t, 1, h.db.Count(t, "email_stats", "lead_id = ? AND source IS NULL AND source_id IS NULL", plain))
	check(qEvent, "sent", true, 0)
	require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "lead_id = ? AND source = 'campaign.event' AND source_id = ?", fromEvent, eventID),
		"a queue send keeps the campaign's attribution")
	check(qDNC, "cancelled", true, 0)
	check(qNoAddr, "cancelled", true, 0)
	r = check(qUnpub, "rescheduled", false, 1)
	require.Equal(t, due.Add(15*time.Minute), *r.ScheduledDate, "failure path: scheduled_date + 15 minutes")
	r = check(qLimited, "rescheduled", false, 1)
	require.Equal(t, sentAt.Add(7*24*time.Hour), *r.ScheduledDate, "rescheduled to when the limit lifts")
	r = check(qPaused, "rescheduled", false, 1)
	require.Equal(t, pauseTo.Add(time.Second), *r.ScheduledDate)
	check(qBounce, "rescheduled", false, 1)
	require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'email' AND reason = 2", bounce))
	check(qLater, "pending", false, 0)
	check(qNoSender, "pending", false, 0)
	require.Len(t, h.rec["email"].Messages(), 1)
	require.Equal(t, queueKey(qPlain, "email"), h.rec["email"].Messages()[0].Key)
}

func TestTwilioCallback(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	id := h.contact(seed.Contact{Mobile: "(650) 253-0001"})
	other := h.contact(seed.Contact{Mobile: "+1 650 253 0002"})
	require.NoError(t, h.db.Mautic.InsertSMSStats(h.ctx, h.db.Mautic, []mautic.SMSStat{{SMSID: c.sms, ContactID: id, DateSent: time.Now(), TrackingHash: "statabc"}}))

	post := func(query string, form url.Values, sign bool) int {
		u := h.srv.URL + "/v1/callbacks/twilio" + query
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sign {
			req.Header.Set("X-Twilio-Signature", sms.Sign("twilio-auth-token", u, form))
		} else {
			req.Header.Set("X-Twilio-Signature", "bm9wZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	failed := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30005"}, "ErrorMessage": {"Unknown handset"}}
	require.Equal(t, http.StatusForbidden, post("?stat=statabc", failed, false), "a bad signature is refused")
	require.Equal(t, 0, h.db.Count(t, "sms_message_stats", "is_failed = 1"))

	require.Equal(t, http.StatusOK, post("?stat=statabc", failed, true))
	require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "tracking_hash = 'statabc' AND is_failed = 1"))
	require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'sms' AND reason = 2", id))

	delivered := url.Values{"MessageSid": {"SM2"}, "MessageStatus": {"delivered"}}
	require.Equal(t, http.StatusOK, post("?stat=nosuch", delivered, true))

	stop := url.Values{"MessageSid": {"SM3"}, "From": {"+16502530002"}, "Body": {" stop "}}
	require.Equal(t, http.StatusOK, post("", stop, true))
	require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'sms' AND reason = 1", other))
	require.Equal(t, 0, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND reason = 1", id), "only the sender's contact")
}

// TestNoDuplicateSendsUnderContention: several replicas route many
// dispatches on the same content at once (their stats share the content
// rows' locks); no send is repeated and every counter matches the sends.
func TestNoDuplicateSendsUnderContention(t *testing.T) {
	var emails, texts atomic.Int64
	slow := func(n *atomic.Int64) channels.Sender {
		return channels.SenderFunc(func(ctx context.Context, m channels.Message) (channels.Receipt, error) {
			time.Sleep(time.Millisecond) // a provider's latency: sends overlap
			n.Add(1)
			return channels.Receipt{ProviderID: m.Key}, nil
		})
	}
	reg := channels.NewRegistry()
	require.NoError(t, reg.Add("email", slow(&emails)))
	require.NoError(t, reg.Add("sms", slow(&texts)))
	opts := withPipeline(func(o *Options) { o.BatchSize = 16; o.Workers = 8 })
	h := newHarnessWith(t, reg, opts)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})
	replicas := []*App{h.app, h.newApp(opts), h.newApp(opts)}
	const n = 600
	for i := 0; i < n; i++ {
		ct := seed.Contact{Email: fmt.Sprintf("c%d@example.test", i)}
		if i%2 == 1 {
			ct = seed.Contact{Mobile: fmt.Sprintf("+1415555%04d", i)}
		}
		h.dispatch(h.contact(ct), msg)
	}
	for _, a := range replicas {
		a.Start()
	}
	h.started = true
	t.Cleanup(func() {
		for _, a := range replicas[1:] {
			a.Stop(5 * time.Second)
		}
	})
	require.Eventually(t, func() bool { return h.db.Count(t, "sidecar_dispatches", "state = 'accepted'") == 0 }, 60*time.Second, 20*time.Millisecond)
	t.Logf("%d lock conflicts rewritten", strings.Count(h.logs.String(), "writing it again"))
	require.Equal(t, int64(n), emails.Load()+texts.Load(), "every dispatch sent exactly once")
	require.Equal(t, int64(n/2), emails.Load())
	require.Equal(t, 1, h.counted("emails", "id = ? AND sent_count = ?", c.email, emails.Load()))
	require.Equal(t, 1, h.counted("sms_messages", "id = ? AND sent_count = ?", c.sms, texts.Load()))
	require.Equal(t, int(emails.Load()), h.db.Count(t, "email_stats", ""))
	require.Equal(t, int(texts.Load()), h.db.Count(t, "sms_message_stats", ""))
}

// TestRefusedBeforeTheProviderIsNoAttempt: a send an open breaker refuses
// is a transient try in the trace, but not a provider call in attempts.
func TestRefusedBeforeTheProviderIsNoAttempt(t *testing.T) {
	reg := channels.NewRegistry()
	require.NoError(t, reg.Add("email", channels.SenderFunc(func(ctx context.Context, m channels.Message) (channels.Receipt, error) {
		return channels.Receipt{}, channels.Transient(channels.NotSent(fmt.Errorf("breaker open")), 0)
	})))
	ok := channelstest.NewRecorder()
	require.NoError(t, reg.Add("sms", ok))
	h := newHarnessWith(t, reg)
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})
	id := h.contact(seed.Contact{Email: "a@example.test", Mobile: "+14155550199"})
	d := h.wait(h.dispatch(id, msg))
	require.Equal(t, "sms", *d.Channel)
	require.Equal(t, []string{"email:failed_transient:provider_transient", "email:failed_transient:provider_transient",
		"email:failed_transient:provider_transient_exhausted", "sms:sent"}, traceOf(d))
	require.Equal(t, 1, d.Attempts, "only the SMS was a provider call")
}

// TestRoutesAsOfAfterTheClaim: a claim can wait for another batch's write
// on the contact (the fence locks it); the batch then reads the contact's
// sends as of after the claim, so a send written in the meantime counts
// toward the limit. The clock is moved on between the claim and the load,
// with the other send dated in between.
func TestRoutesAsOfAfterTheClaim(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})
	id := h.contact(seed.Contact{Email: "a@example.test", Mobile: "+14155550123"})
	h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(1, mautic.Day)})
	did := h.dispatch(id, msg)

	real := time.Now().UTC()
	require.NoError(t, h.s.EmailStat(h.ctx, id, c.email, real.Add(15*time.Second)))
	calls := 0
	h.app.pipeline.now = func() time.Time {
		calls++
		if calls == 1 {
			return real.Add(10 * time.Second) // the claim
		}
		return real.Add(20 * time.Second)
	}
	h.runUntilIdle(h.app)
	d := h.get(did)
	require.Equal(t, []string{"email:skipped:frequency", "sms:sent"}, traceOf(d), "the email sent after the claim began counts")
}

// TestQueueFloorFollowsTheClaims: the claim scan's lower bound moves up
// with the rows claimed (so a claim does not pass every row sent before
// it), yet no row is left behind: a row whose contact another batch holds
// is claimed once the hold ends, and a row queued with a scheduled date
// before the bound is found once the queue looks empty.
func TestQueueFloorFollowsTheClaims(t *testing.T) {
	h := newHarness(t, withPipeline(func(o *Options) { o.QueueBatchSize = 2 }))
	c := h.content()
	m := h.db.Mautic
	q := h.app.queue
	now := time.Now().UTC().Truncate(time.Second)
	enqueue := func(contact int64, at time.Time) int64 {
		id, err := m.Enqueue(h.ctx, m, mautic.NewQueueRow{Channel: "email", ChannelID: c.email, ContactID: contact, ScheduledDate: at, Now: now})
		require.NoError(t, err)
		return id
	}
	var contacts []int64
	var ids []int64
	for i := range 5 {
		contacts = append(contacts, h.contact(seed.Contact{Email: fmt.Sprintf("floor%d@example.test", i)}))
		ids = append(ids, enqueue(contacts[i], now.Add(time.Duration(i-10)*time.Minute)))
	}
	// Another batch holds the first row's contact.
	other := store.NewLease()
	tx, err := q.store.BeginTx(h.ctx)
	require.NoError(t, err)
	held, err := q.store.LeaseContacts(h.ctx, tx, contacts[:1], other, now.Add(time.Hour), now)
	require.NoError(t, err)
	require.True(t, held[contacts[0]])
	require.NoError(t, tx.Commit())

	run := func() int {
		t.Helper()
		n, err := q.RunOnce(h.ctx)
		require.NoError(t, err)
		return n
	}
	floor := func() time.Time {
		q.floorMu.Lock()
		defer q.floorMu.Unlock()
		return q.floor
	}
	require.Equal(t, 1, run(), "rows 0 (its contact held: skipped) and 1 claimed; row 1 sent")
	require.Equal(t, now.Add(-10*time.Minute), floor(), "the bound stops at the held row")
	require.NoError(t, q.store.ReleaseContacts(h.ctx, m, other, contacts[:1]))
	require.Equal(t, 2, run(), "rows 0 and 2, now that the hold has ended")
	require.Equal(t, 2, run(), "rows 3 and 4")
	require.Equal(t, now.Add(-7*time.Minute), floor(), "the bound has moved up to the last claim's first row")

	late := h.contact(seed.Contact{Email: "floor-late@example.test"})
	lateID := enqueue(late, now.Add(-time.Hour)) // before the bound
	require.Equal(t, 0, run(), "nothing after the bound: the queue looks empty, and the bound is read again")
	require.Equal(t, 1, run(), "the row before the old bound")
	rows, err := m.QueueRows(h.ctx, m, append(ids, lateID))
	require.NoError(t, err)
	for _, id := range append(ids, lateID) {
		require.Equal(t, "sent", rows[id].Status, "queue row %d", id)
	}
	require.Len(t, h.rec["email"].Messages(), 6, "each row sent once")
}
