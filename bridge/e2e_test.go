package bridge

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
)

// TestRoutingEndToEnd shows, for each rule of DESIGN.md section 6, the
// channel chosen, the rows written and the trace, through the real HTTP
// server, a real database and the real pipeline (recording senders).
func TestRoutingEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.start()
	c := h.content()
	_, eventID, err := h.s.Campaign(h.ctx, "Onboarding")
	require.NoError(t, err)
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms},
		seed.Channel{Channel: "notification", ChannelID: c.push})
	ev := itoa(eventID)

	t.Run("no preferences: the message's first channel", func(t *testing.T) {
		id := h.contact(seed.Contact{FirstName: "Ann", Email: "ann@example.test", Mobile: "+15550000001"})
		d := h.wait(h.dispatch(id, msg, "campaign_id", "3", "event_id", ev))
		require.Equal(t, "sent", d.State)
		require.Equal(t, "email", *d.Channel)
		require.Equal(t, c.email, *d.ChannelID)
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, []string{"email:sent"}, traceOf(d))
		require.Equal(t, 1, h.db.Count(t, "email_stats", "lead_id = ? AND email_id = ? AND source = 'campaign.event' AND source_id = ? AND email_address = 'ann@example.test'", id, c.email, eventID))
		require.Equal(t, 1, h.db.Count(t, "email_copies", ""))
		require.Equal(t, int64(3), *d.CampaignID)
	})
	t.Run("preferred channel first", func(t *testing.T) {
		id := h.contact(seed.Contact{FirstName: "Bo", Email: "bo@example.test", Mobile: "+15550000002"})
		h.rule(seed.Rule{ContactID: id, Channel: "email"})
		h.rule(seed.Rule{ContactID: id, Channel: "sms", Preferred: true})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"sms:sent"}, traceOf(d))
		require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "lead_id = ? AND is_failed = 0 AND source IS NULL", id))
		require.Equal(t, 1, h.counted("sms_messages", "id = ? AND sent_count >= 1", c.sms))
		sent := h.rec["sms"].Messages()
		require.Equal(t, "+15550000002", sent[len(sent)-1].To)
	})
	t.Run("dnc skips", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "cy@example.test", Mobile: "+15550000003"})
		_, err := h.s.DNC(h.ctx, id, "email", mautic.DNCUnsubscribed)
		require.NoError(t, err)
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"email:skipped:dnc", "sms:sent"}, traceOf(d))
	})
	t.Run("frequency skips and falls back", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "di@example.test", Mobile: "+15550000004"})
		h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(1, mautic.Day)})
		require.NoError(t, h.s.EmailStat(h.ctx, id, c.email, time.Now().Add(-time.Hour)))
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"email:skipped:frequency", "sms:sent"}, traceOf(d))
		require.Equal(t, "1 of 1 per DAY", d.Trace[0].Detail)
	})
	t.Run("no address skips", func(t *testing.T) {
		id := h.contact(seed.Contact{Phone: "+15550000005"}, "web-player-5")
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel, "phone is used when there is no mobile")
		require.Equal(t, []string{"email:skipped:no_address", "sms:sent"}, traceOf(d))
	})
	t.Run("push to the web player ids", func(t *testing.T) {
		id := h.contact(seed.Contact{}, "web-player-6", "app-player-6")
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "notification", *d.Channel)
		sent := h.rec["notification"].Messages()
		require.Equal(t, []string{"web-player-6"}, sent[len(sent)-1].PushIDs, "only push ids of the web kind")
		require.Equal(t, 1, h.db.Count(t, "push_notification_stats", "lead_id = ? AND notification_id = ?", id, c.push))
		require.Equal(t, 1, h.counted("push_notifications", "id = ? AND sent_count = 1", c.push))
	})
	t.Run("paused and limited everywhere: queued on the first blocked channel", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "ed@example.test", Mobile: "+15550000007"})
		sent := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
		h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(1, mautic.Day)})
		require.NoError(t, h.s.EmailStat(h.ctx, id, c.email, sent))
		from, to := time.Now().UTC().Add(-time.Hour).Truncate(time.Second), time.Now().UTC().Add(72*time.Hour).Truncate(time.Second)
		// No limit on sms: an unlimited rule comes before 1 a DAY.
		h.rule(seed.Rule{ContactID: id, Channel: "sms", PauseFrom: &from, PauseTo: &to})
		d := h.wait(h.dispatch(id, msg, "event_id", ev))
		require.Equal(t, "queued", d.State, "%v", d.Trace)
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"sms:skipped:paused", "email:skipped:frequency", "notification:skipped:no_address", "sms:queued"}, traceOf(d))
		require.NotNil(t, d.Queue)
		require.Equal(t, "pending", d.Queue.Status)
		require.Equal(t, isoTime(to.Add(time.Second)), d.Queue.ScheduledDate, "pause_to_date + 1 second")
		require.Equal(t, 1, h.db.Count(t, "message_queue", "lead_id = ? AND channel = 'sms' AND channel_id = ? AND event_id = ? AND priority = 2 AND max_attempts = 3 AND attempts = 0 AND status = 'pending'", id, c.sms, eventID))
	})
	t.Run("over the limit: queued until the oldest counted send leaves the window", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "ez@example.test"})
		sent := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
		h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(1, mautic.Day)})
		require.NoError(t, h.s.EmailStat(h.ctx, id, c.email, sent))
		d := h.wait(h.dispatch(id, msg, "event_id", ev))
		require.Equal(t, "queued", d.State, "%v", d.Trace)
		require.Equal(t, "email", *d.Channel)
		require.Equal(t, []string{"email:skipped:frequency", "sms:skipped:no_address", "notification:skipped:no_address", "email:queued"}, traceOf(d))
		require.Equal(t, isoTime(sent.Add(24*time.Hour)), d.Queue.ScheduledDate, "the send's date_sent + 1 DAY")

		// A second dispatch finds the pending row and points at it, unchanged.
		d2 := h.wait(h.dispatch(id, msg, "event_id", ev, "idempotency_key", "second"))
		require.Equal(t, "queued", d2.State)
		require.Equal(t, d.Queue.ID, d2.Queue.ID)
		require.Contains(t, d2.Trace[len(d2.Trace)-1].Detail, "already queued")
		require.Equal(t, 1, h.db.Count(t, "message_queue", "lead_id = ?", id))
	})
	t.Run("a limit of 0 is never queued on", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "fy@example.test"})
		h.rule(seed.Rule{ContactID: id, Channel: "email", Limit: lim(0, mautic.Month)})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "failed", d.State)
		require.Nil(t, d.Channel)
		require.Equal(t, []string{"email:skipped:frequency", "sms:skipped:no_address", "notification:skipped:no_address"}, traceOf(d))
		require.Equal(t, 0, h.db.Count(t, "message_queue", "lead_id = ?", id))
	})
}

func TestProviderOutcomes(t *testing.T) {
	h := newHarness(t)
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms},
		seed.Channel{Channel: "tweet", ChannelID: c.tweet})

	t.Run("unreachable address: DNC bounced, next channel", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "bounce@example.test", Mobile: "+15550001001"})
		h.rec["email"].Fail("bounce@example.test", channelstest.Failure{Kind: channels.KindUnreachable})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"email:failed_permanent:provider_permanent", "sms:sent"}, traceOf(d))
		require.Equal(t, 2, d.Attempts)
		require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'email' AND reason = 2 AND channel_id = ?", id, c.email))
		require.Equal(t, 0, h.db.Count(t, "email_stats", "lead_id = ?", id), "a rejected email writes no stat")
	})
	t.Run("opted out at the provider: DNC unsubscribed and a failed SMS stat", func(t *testing.T) {
		id := h.contact(seed.Contact{Mobile: "+15550001002", Twitter: "stopper"})
		before := h.counted("sms_messages", "id = ? AND sent_count = ?", c.sms, len(h.rec["sms"].Messages()))
		require.Equal(t, 1, before)
		h.rec["sms"].Fail("+15550001002", channelstest.Failure{Kind: channels.KindOptedOut})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "tweet", *d.Channel)
		require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'sms' AND reason = 1", id))
		require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "lead_id = ? AND is_failed = 1", id))
		require.Equal(t, 1, h.counted("sms_messages", "id = ? AND sent_count = ?", c.sms, len(h.rec["sms"].Messages())), "no success counted")
		require.Equal(t, 1, h.db.Count(t, "tweet_stats", "lead_id = ? AND handle = '@stopper'", id))
	})
	t.Run("other permanent error: next channel, no DNC", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "perm@example.test", Mobile: "+15550001003"})
		h.rec["email"].Fail("perm@example.test", channelstest.Failure{Kind: channels.KindPermanent})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, 0, h.db.Count(t, "lead_donotcontact", "lead_id = ?", id))
	})
	t.Run("transient then success: retried on the same channel", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "flaky@example.test", Mobile: "+15550001004"})
		h.rec["email"].Fail("flaky@example.test", channelstest.Failure{Kind: channels.KindTransient, Times: 2})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "email", *d.Channel)
		require.Equal(t, []string{"email:failed_transient:provider_transient", "email:failed_transient:provider_transient", "email:sent"}, traceOf(d))
		require.Equal(t, 3, d.Attempts)
	})
	t.Run("transient exhausted: next channel", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "down@example.test", Mobile: "+15550001005"})
		h.rec["email"].Fail("down@example.test", channelstest.Failure{Kind: channels.KindTransient})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"email:failed_transient:provider_transient", "email:failed_transient:provider_transient",
			"email:failed_transient:provider_transient_exhausted", "sms:sent"}, traceOf(d))
		require.Equal(t, 4, d.Attempts)
	})
	t.Run("a Retry-After beyond the cap exhausts the channel at once", func(t *testing.T) {
		id := h.contact(seed.Contact{Email: "slow@example.test", Mobile: "+15550001006"})
		h.rec["email"].Fail("slow@example.test", channelstest.Failure{Kind: channels.KindTransient, RetryAfter: 2 * time.Minute})
		d := h.wait(h.dispatch(id, msg))
		require.Equal(t, "sms", *d.Channel)
		require.Equal(t, []string{"email:failed_transient:provider_transient_exhausted", "sms:sent"}, traceOf(d))
	})
	t.Run("every channel exhausted: the dispatch waits and is routed again", func(t *testing.T) {
		id := h.contact(seed.Contact{Mobile: "+15550001007"})
		h.rec["sms"].Fail("+15550001007", channelstest.Failure{Kind: channels.KindTransient})
		did := h.dispatch(id, msg)
		deadline := time.Now().Add(10 * time.Second)
		var d dispatchJSON
		for time.Now().Before(deadline) {
			d = h.get(did)
			if d.Attempts >= 3 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		require.Equal(t, "accepted", d.State, "a provider outage loses nothing")
		require.Equal(t, 3, d.Attempts)
		require.Contains(t, traceOf(d), "sms:failed_transient:provider_transient_exhausted")
		next, err := time.Parse(time.RFC3339, d.NextAttemptAt)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(5*time.Minute), next, 30*time.Second, "routed again in 5 minutes")
		require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "lead_id = ? AND is_failed = 1", id), "one failed stat when the SMS channel is given up")
	})
}

func TestReroutingEndsAfterItsBound(t *testing.T) {
	h := newHarness(t, withPipeline(func(o *Options) { o.RerouteEvery = 50 * time.Millisecond; o.RerouteFor = 300 * time.Millisecond }))
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "sms", ChannelID: c.sms})
	id := h.contact(seed.Contact{Mobile: "+15550002001"})
	h.rec["sms"].Fail("+15550002001", channelstest.Failure{Kind: channels.KindTransient})
	d := h.wait(h.dispatch(id, msg), "failed")
	require.GreaterOrEqual(t, d.Attempts, 6, "at least two rounds")
	last := d.Trace[len(d.Trace)-1]
	require.Equal(t, ReasonProviderTransientExhausted, last.Reason)
	require.Equal(t, DecisionFailedPermanent, last.Decision)
}

func TestDuplicates(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	id := h.contact(seed.Contact{Email: "dup@example.test"})
	_, eventID, err := h.s.Campaign(h.ctx, "c")
	require.NoError(t, err)
	ev := itoa(eventID)

	first := h.dispatch(id, msg, "campaign_id", "1", "event_id", ev)
	code, body := h.post(map[string]string{"contact_id": itoa(id), "message_id": itoa(msg), "campaign_id": "1", "event_id": ev})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "duplicate", body["status"])
	require.Equal(t, float64(first), body["dispatch_id"])

	other := h.dispatch(id, msg, "campaign_id", "1", "event_id", "999")
	require.NotEqual(t, first, other, "another event is another dispatch")

	k1 := h.dispatch(id, msg, "idempotency_key", "abc")
	code, body = h.post(map[string]string{"contact_id": itoa(id), "message_id": itoa(msg), "idempotency_key": "abc"})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "duplicate", body["status"])
	require.Equal(t, float64(k1), body["dispatch_id"])
	require.NotEqual(t, first, k1, "the key spaces are separate")
	require.Equal(t, 3, h.db.Count(t, "sidecar_dispatches", ""))

	// Routing sends the email once for each dispatch, never for a duplicate.
	h.runUntilIdle(h.app)
	require.Len(t, h.rec["email"].Messages(), 3)

	t.Run("after the window a repeat is a new dispatch", func(t *testing.T) {
		h.db.MustExec(t, "UPDATE {p}sidecar_dispatch_keys SET created_at = ?", time.Now().UTC().Add(-25*time.Hour))
		again := h.dispatch(id, msg, "idempotency_key", "abc")
		require.NotEqual(t, k1, again)
	})
}

func TestCustomChannelAndTweet(t *testing.T) {
	h := newHarness(t)
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "whatsapp", ChannelID: 7, Properties: `{"template":"welcome"}`},
		seed.Channel{Channel: "tweet", ChannelID: c.tweet})
	id := h.contact(seed.Contact{Twitter: "ada"})
	d := h.wait(h.dispatch(id, msg))
	require.Equal(t, "whatsapp", *d.Channel)
	require.Equal(t, 1, h.db.Count(t, "sidecar_sends", "contact_id = ? AND channel = 'whatsapp' AND channel_id = 7 AND dispatch_id = ?", id, d.ID))
	sent := h.rec["whatsapp"].Messages()
	require.JSONEq(t, `{"template":"welcome"}`, string(sent[0].Custom.Properties))
	require.Equal(t, dispatchKey(d.ID, "whatsapp"), sent[0].Key)

	// A whatsapp limit of 1 a week now sends the next one by tweet.
	h.rule(seed.Rule{ContactID: id, Channel: "whatsapp", Limit: lim(1, mautic.Week)})
	d = h.wait(h.dispatch(id, msg, "idempotency_key", "2"))
	require.Equal(t, "tweet", *d.Channel)
	require.Equal(t, []string{"whatsapp:skipped:frequency", "tweet:sent"}, traceOf(d))
}

func TestRetryEndpoint(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	id := h.contact(seed.Contact{})
	did := h.dispatch(id, msg)
	h.runUntilIdle(h.app)
	require.Equal(t, "failed", h.get(did).State)

	code, body := h.do(http.MethodPost, "/v1/dispatches/"+itoa(did)+"/retry", "", "", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, "accepted", body["state"])
	h.db.MustExec(t, "UPDATE {p}leads SET email = 'now@example.test' WHERE id = ?", id)
	h.runUntilIdle(h.app)
	d := h.get(did)
	require.Equal(t, "sent", d.State)
	require.Equal(t, []string{"email:skipped:no_address", "email:sent"}, traceOf(d), "the trace keeps the first routing")

	code, body = h.do(http.MethodPost, "/v1/dispatches/"+itoa(did)+"/retry", "", "", nil)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "not_failed", body["error"].(map[string]any)["code"])
	code, _ = h.do(http.MethodPost, "/v1/dispatches/99999999/retry", "", "", nil)
	require.Equal(t, http.StatusNotFound, code)
}

func TestRouteAndSimulate(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})
	a := h.contact(seed.Contact{Email: "a@example.test"})
	b := h.contact(seed.Contact{Mobile: "+15550003001"})
	_, err := h.s.DNC(h.ctx, b, "sms", mautic.DNCManual)
	require.NoError(t, err)

	code, body := h.do(http.MethodGet, "/v1/route?contact_id="+itoa(a)+"&message_id="+itoa(msg), "", "", nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, map[string]any{"channel": "email", "channel_id": float64(c.email), "state": "sent"}, body["decision"])
	code, body = h.do(http.MethodGet, "/v1/route?contact_id="+itoa(b)+"&message_id="+itoa(msg), "", "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"channel": nil, "state": "failed"}, body["decision"])
	require.Len(t, body["trace"], 2)
	code, _ = h.do(http.MethodGet, "/v1/route?contact_id=999999&message_id="+itoa(msg), "", "", nil)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = h.do(http.MethodGet, "/v1/route?contact_id=1", "", "", nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, 0, h.db.Count(t, "sidecar_dispatches", ""), "route writes nothing")
	require.Equal(t, 0, h.rec["email"].Count(), "route sends nothing")

	code, body = h.do(http.MethodPost, "/v1/simulate", "application/json",
		`{"message_id":`+itoa(msg)+`,"contact_ids":[`+itoa(a)+`,`+itoa(b)+`,999999,`+itoa(a)+`]}`, nil)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, float64(2), body["contacts"].(float64)-1, "three distinct ids, one unknown")
	require.Equal(t, map[string]any{"email": float64(1)}, body["channels"])
	require.Equal(t, map[string]any{"sent": float64(1), "failed": float64(1)}, body["states"])
	require.Equal(t, map[string]any{"no_address": float64(1), "dnc": float64(1)}, body["skips"])
	require.Equal(t, []any{float64(999999)}, body["unknown_contacts"])

	code, _ = h.do(http.MethodPost, "/v1/simulate", "application/json", `{"message_id":1,"contact_ids":[]}`, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = h.do(http.MethodPost, "/v1/simulate", "application/json", `{"message_id":999,"contact_ids":[1]}`, nil)
	require.Equal(t, http.StatusUnprocessableEntity, code)
}
