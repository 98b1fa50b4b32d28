package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/store"
)

// TestBadRequests: every malformed call gets its status code and a JSON
// error, and writes nothing.
func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	empty := h.message(seed.Channel{Channel: "email"}, seed.Channel{Channel: "sms", ChannelID: c.sms, Disabled: true})
	contact := h.contact(seed.Contact{Email: "x@example.test"})
	ok := "contact_id=" + itoa(contact) + "&message_id=" + itoa(msg)
	form := "application/x-www-form-urlencoded"
	big := strings.Repeat("a", MaxBody)

	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		header      map[string]string
		wantCode    int
		wantError   string
	}{
		{"no token", "POST", "", form, ok, map[string]string{"Authorization": ""}, 401, "unauthorized"},
		{"wrong token", "POST", "", form, ok, map[string]string{"Authorization": "Bearer nope"}, 401, "unauthorized"},
		{"wrong scheme", "POST", "", form, ok, map[string]string{"Authorization": "Basic " + testToken}, 401, "unauthorized"},
		{"token prefix only", "POST", "", form, ok, map[string]string{"Authorization": "Bearer " + testToken[:5]}, 401, "unauthorized"},
		{"no content type", "POST", "", "", ok, nil, 415, "unsupported_media_type"},
		{"multipart", "POST", "", "multipart/form-data; boundary=x", ok, nil, 415, "unsupported_media_type"},
		{"text/plain", "POST", "", "text/plain", ok, nil, 415, "unsupported_media_type"},
		{"a 401 comes before a 415", "POST", "", "text/plain", ok, map[string]string{"Authorization": ""}, 401, "unauthorized"},
		{"oversized body", "POST", "", form, ok + "&pad=" + big, nil, 413, "payload_too_large"},
		{"a 415 comes before a 413", "POST", "", "text/plain", big + big, nil, 415, "unsupported_media_type"},
		{"missing contact_id", "POST", "", form, "message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"missing message_id", "POST", "", form, "contact_id=" + itoa(contact), nil, 400, "invalid_request"},
		{"empty body", "POST", "", form, "", nil, 400, "invalid_request"},
		{"zero id", "POST", "", form, "contact_id=0&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"negative id", "POST", "", form, "contact_id=-1&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"non-numeric id", "POST", "", form, "contact_id=abc&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"float id", "POST", "", form, "contact_id=1.5&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"exponent id", "POST", "", form, "contact_id=1e3&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"plus sign", "POST", "", form, "contact_id=%2B5&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"huge id", "POST", "", form, "contact_id=99999999999999999999999&message_id=" + itoa(msg), nil, 400, "invalid_request"},
		{"message id over INT UNSIGNED", "POST", "", form, "contact_id=1&message_id=4294967296", nil, 400, "invalid_request"},
		{"repeated field", "POST", "", form, ok + "&contact_id=" + itoa(contact), nil, 400, "invalid_request"},
		{"bad url encoding", "POST", "", form, "contact_id=%zz&message_id=1", nil, 400, "invalid_request"},
		{"empty idempotency key", "POST", "", form, ok + "&idempotency_key=", nil, 400, "invalid_request"},
		{"long idempotency key", "POST", "", form, ok + "&idempotency_key=" + strings.Repeat("k", 192), nil, 400, "invalid_request"},
		{"non-ASCII idempotency key", "POST", "", form, ok + "&idempotency_key=%C3%A9", nil, 400, "invalid_request"},
		{"control char in key", "POST", "", form, ok + "&idempotency_key=a%00b", nil, 400, "invalid_request"},
		{"injection in id", "POST", "", form, "contact_id=1%3B+DROP+TABLE+leads&message_id=1", nil, 400, "invalid_request"},
		{"injection in id 2", "POST", "", form, "contact_id=1'+OR+'1'%3D'1&message_id=1", nil, 400, "invalid_request"},
		{"json not an object", "POST", "", "application/json", `[1,2]`, nil, 400, "invalid_request"},
		{"json nested id", "POST", "", "application/json", `{"contact_id":{"a":1},"message_id":"1"}`, nil, 400, "invalid_request"},
		{"json duplicate key", "POST", "", "application/json", `{"contact_id":"1","contact_id":"2","message_id":"1"}`, nil, 400, "invalid_request"},
		{"json null id", "POST", "", "application/json", `{"contact_id":null,"message_id":"1"}`, nil, 400, "invalid_request"},
		{"json bool id", "POST", "", "application/json", `{"contact_id":true,"message_id":"1"}`, nil, 400, "invalid_request"},
		{"json trailing data", "POST", "", "application/json", `{"contact_id":"1","message_id":"1"} {}`, nil, 400, "invalid_request"},
		{"json truncated", "POST", "", "application/json", `{"contact_id":"1",`, nil, 400, "invalid_request"},
		{"json deeply nested extra", "POST", "", "application/json", `{"contact_id":"1","message_id":"1","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, nil, 400, "invalid_request"},
		{"json float id", "POST", "", "application/json", `{"contact_id":1.0,"message_id":"1"}`, nil, 400, "invalid_request"},
		{"invalid utf-8", "POST", "", form, "contact_id=%FF%FE&message_id=1", nil, 400, "invalid_request"},
		{"GET without fields", "GET", "/v1/campaign/message", "", "", nil, 400, "invalid_request"},
		{"GET repeated", "GET", "/v1/campaign/message?contact_id=1&contact_id=1&message_id=1", "", "", nil, 400, "invalid_request"},
		{"unknown contact", "POST", "", form, "contact_id=999999&message_id=" + itoa(msg), nil, 422, "unknown_contact"},
		{"unknown message", "POST", "", form, "contact_id=" + itoa(contact) + "&message_id=999999", nil, 422, "unknown_message"},
		{"message without candidate channel", "POST", "", form, "contact_id=" + itoa(contact) + "&message_id=" + itoa(empty), nil, 422, "no_candidate_channel"},
		{"PUT not allowed", "PUT", "", form, ok, nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/v1/nope", "", "", nil, 404, "not_found"},
		{"path trick", "GET", "/v1/dispatches/..%2F..%2Fetc", "", "", nil, 404, "not_found"},
		{"SQL in a path id", "GET", "/v1/dispatches/1%20OR%201=1", "", "", nil, 400, "invalid_request"},
		{"negative dispatch id", "GET", "/v1/dispatches/-1", "", "", nil, 400, "invalid_request"},
		{"plus dispatch id", "GET", "/v1/dispatches/+1", "", "", nil, 400, "invalid_request"},
		{"unknown dispatch", "GET", "/v1/dispatches/123456", "", "", nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v1/campaign/message"
			}
			code, body := h.do(tc.method, path, tc.contentType, tc.body, tc.header)
			require.Equal(t, tc.wantCode, code, "%v", body)
			require.NotNil(t, body, "a JSON error body")
			e, ok := body["error"].(map[string]any)
			require.True(t, ok, "%v", body)
			require.Equal(t, tc.wantError, e["code"])
			require.NotEmpty(t, e["message"])
		})
	}
	require.Equal(t, 0, h.db.Count(t, "sidecar_dispatches", ""), "nothing rejected is recorded")
	require.Equal(t, 0, h.db.Count(t, "sidecar_dispatch_keys", ""))

	t.Run("the same call as JSON with string values, and as GET, is accepted", func(t *testing.T) {
		code, body := h.do("POST", "/v1/campaign/message", "application/json; charset=utf-8",
			`{"contact_id":"`+itoa(contact)+`","message_id":"`+itoa(msg)+`","campaign_id":"2","extra":"ignored","n":{"a":[1]}}`, nil)
		require.Equal(t, 200, code, "%v", body)
		require.Equal(t, "accepted", body["status"])
		code, body = h.do("GET", "/v1/campaign/message?"+ok+"&event_id=5", "", "", map[string]string{"Authorization": "", "X-Sidecar-Token": testToken})
		require.Equal(t, 200, code, "%v", body)
		code, body = h.do("POST", "/v1/campaign/message", "application/json", `{"contact_id":`+itoa(contact)+`,"message_id":`+itoa(msg)+`,"idempotency_key":"k-1"}`, nil)
		require.Equal(t, 200, code, "numbers are fine too: %v", body)
		code, _ = h.do("POST", "/v1/campaign/message", form, "contact_id=+"+itoa(contact)+"+&message_id="+itoa(msg)+"&idempotency_key=k-2", nil)
		require.Equal(t, 200, code, "values are trimmed as Mautic trims them")
	})
}

// FuzzRequestParsing: parsing never panics, and whatever it accepts is valid.
func FuzzRequestParsing(f *testing.F) {
	f.Add("contact_id=1&message_id=2", false)
	f.Add(`{"contact_id":"1","message_id":"2","idempotency_key":"x"}`, true)
	f.Add(`{"contact_id":1,"message_id":2,"x":[{"y":null}]}`, true)
	f.Add("contact_id=%zz", false)
	f.Add(`{"a":`+strings.Repeat("[", 40), true)
	f.Fuzz(func(t *testing.T, body string, isJSON bool) {
		var (
			fs  fields
			err error
		)
		if isJSON {
			fs, err = jsonFields([]byte(body))
		} else {
			fs, err = formFields(body)
		}
		if err != nil {
			var re *requestError
			require.ErrorAs(t, err, &re)
			require.True(t, utf8.ValidString(re.msg), "error messages are valid text")
			return
		}
		r, err := parseRequest(fs)
		if err != nil {
			return
		}
		require.Positive(t, r.ContactID)
		require.Positive(t, r.MessageID)
		require.GreaterOrEqual(t, r.CampaignID, int64(0))
		require.LessOrEqual(t, r.MessageID, int64(maxIntID))
		if r.IdempotencyKey != "" {
			require.True(t, validKey(r.IdempotencyKey))
		}
		if isJSON {
			require.True(t, json.Valid([]byte(body)))
		}
	})
}

func TestHealthReadyMetrics(t *testing.T) {
	h := newHarness(t)
	code, body := h.do("GET", "/healthz", "", "", nil)
	require.Equal(t, 200, code)
	require.Equal(t, "ok", body["status"])
	code, body = h.do("GET", "/readyz", "", "", nil)
	require.Equal(t, 200, code, "%v", body)

	h.db.MustExec(t, "UPDATE {p}sidecar_schema_migrations SET version = 0")
	h.app.readyAt = h.app.readyAt.Add(-2 * 1e9)
	code, body = h.do("GET", "/readyz", "", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "schema_not_current", body["error"].(map[string]any)["code"])

	req, _ := http.NewRequest("GET", h.srv.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	var sb strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, m := range []string{"sidecar_http_requests_total", "sidecar_backlog", "sidecar_claim_lag_seconds", "sidecar_queue_depth"} {
		require.True(t, strings.Contains(sb.String(), m), "metric %s missing", m)
	}
}

// TestBacklogLimit: above SIDECAR_MAX_BACKLOG accepted dispatches the
// webhook answers 429 backlog_full and records nothing; once the workers
// have routed the backlog and it has been counted again, calls are accepted
// again.
func TestBacklogLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBacklog = 3 })
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	var contacts, ids []int64
	for i := range 4 {
		contacts = append(contacts, h.contact(seed.Contact{Email: "b" + itoa(int64(i)) + "@example.test"}))
	}
	for _, id := range contacts[:3] {
		ids = append(ids, h.dispatch(id, msg))
	}
	refused := map[string]string{"contact_id": itoa(contacts[3]), "message_id": itoa(msg)}
	code, body := h.post(refused)
	require.Equal(t, http.StatusTooManyRequests, code, "%v", body)
	require.Equal(t, "backlog_full", body["error"].(map[string]any)["code"])
	require.Equal(t, 3, h.db.Count(t, "sidecar_dispatches", ""), "the refused call is not recorded")
	require.Equal(t, 0, h.db.Count(t, "sidecar_dispatches", "contact_id = ?", contacts[3]))

	h.start()
	for _, id := range ids {
		require.Equal(t, store.Sent, h.wait(id).State)
	}
	// The next count (every 500 ms at half the limit or more) sees it.
	deadline := time.Now().Add(10 * time.Second)
	for h.app.intake.Backlog() != 0 {
		require.True(t, time.Now().Before(deadline), "backlog still counted as %d", h.app.intake.Backlog())
		time.Sleep(10 * time.Millisecond)
	}
	code, body = h.post(refused)
	require.Equal(t, http.StatusOK, code, "accepted again once the backlog was routed and counted: %v", body)
	require.Equal(t, 1, h.db.Count(t, "sidecar_dispatches", "contact_id = ?", contacts[3]))
}

// TestBacklogLimitUnderConcurrentCalls: calls arriving together are
// recorded in batches; the limit holds exactly, and a batch that would
// cross it is accepted up to the limit rather than refused whole (which
// answered 429 while the backlog was below the limit).
func TestBacklogLimitUnderConcurrentCalls(t *testing.T) {
	const limit, calls = 10, 40
	h := newHarness(t, func(c *Config) { c.MaxBacklog = limit })
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	var contacts []int64
	for i := range calls {
		contacts = append(contacts, h.contact(seed.Contact{Email: "cc" + itoa(int64(i)) + "@example.test"}))
	}
	codes := make(chan int, calls)
	var wg sync.WaitGroup
	for _, id := range contacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"contact_id": {itoa(id)}, "message_id": {itoa(msg)}}
			req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/campaign/message", strings.NewReader(form.Encode()))
			if err != nil {
				codes <- 0
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	require.Equal(t, map[int]int{http.StatusOK: limit, http.StatusTooManyRequests: calls - limit}, count)
	require.Equal(t, limit, h.db.Count(t, "sidecar_dispatches", ""))
}

// TestSubmitRacingClose: calls still arriving while the intake closes (an
// HTTP shutdown that ran out of time) each get a dispatch or errStopping
// (a send on the closed queue would panic), and every one answered with a
// dispatch is recorded. The window between the closed check and the send
// is narrow: this stresses it, it does not force it.
func TestSubmitRacingClose(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	contact := h.contact(seed.Contact{Email: "race@example.test"})
	const callers = 16
	var wg sync.WaitGroup
	var accepted, stopping atomic.Int64
	start := make(chan struct{})
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				res := h.app.intake.Submit(context.Background(), Request{ContactID: contact, MessageID: msg,
					IdempotencyKey: fmt.Sprintf("race-%d-%d", g, i)})
				switch {
				case res.Err == nil:
					accepted.Add(1)
				case errors.Is(res.Err, errStopping):
					stopping.Add(1)
					return
				default:
					t.Errorf("unexpected outcome: %v", res.Err)
					return
				}
			}
		}()
	}
	close(start)
	for accepted.Load() < 50 {
		runtime.Gosched()
	}
	h.app.intake.Close()
	wg.Wait()
	require.Equal(t, int64(callers), stopping.Load(), "every caller ends with errStopping")
	require.Equal(t, int(accepted.Load()), h.db.Count(t, "sidecar_dispatches", "contact_id = ?", contact))
}

// TestIntakeBatchWithUnknownContacts: a batch is recorded with its
// contacts checked inside its transaction; when one is unknown the batch
// falls back to reading them, and every request gets its own answer: the
// known ones recorded, the unknown ones refused and not written.
func TestIntakeBatchWithUnknownContacts(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	var known []int64
	for i := range 4 {
		known = append(known, h.contact(seed.Contact{Email: "k" + itoa(int64(i)) + "@example.test"}))
	}
	unknown := known[3] + 1000
	submit := func(contacts ...int64) []intakeResult {
		batch := make([]*intakeReq, len(contacts))
		for i, id := range contacts {
			batch[i] = &intakeReq{r: Request{ContactID: id, MessageID: msg, IdempotencyKey: fmt.Sprintf("u-%d-%d", id, i)},
				done: make(chan intakeResult, 1)}
		}
		h.app.intake.process(batch)
		out := make([]intakeResult, len(batch))
		for i, r := range batch {
			select {
			case out[i] = <-r.done:
			default:
				t.Fatalf("request %d (contact %d) got no answer", i, contacts[i])
			}
		}
		return out
	}
	res := submit(known[0], known[1])
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	require.Equal(t, 2, h.db.Count(t, "sidecar_dispatches", ""))

	res = submit(known[2], unknown, known[3], unknown+1)
	for i, wantErr := range []error{nil, errUnknownContact, nil, errUnknownContact} {
		if wantErr == nil {
			require.NoError(t, res[i].Err, "request %d", i)
			require.Positive(t, res[i].ID)
			continue
		}
		require.ErrorIs(t, res[i].Err, wantErr, "request %d", i)
	}
	require.Equal(t, 4, h.db.Count(t, "sidecar_dispatches", ""))
	require.Equal(t, 4, h.db.Count(t, "sidecar_dispatch_keys", ""))
	require.Equal(t, 0, h.db.Count(t, "sidecar_dispatches", "contact_id IN (?, ?)", unknown, unknown+1))
	require.Equal(t, 1, h.db.Count(t, "sidecar_dispatches", "contact_id = ? AND id = ?", known[3], res[2].ID))
	require.Equal(t, int64(4), h.app.intake.Backlog())
}
