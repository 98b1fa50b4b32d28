package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

const testToken = "test-token-0123456789"

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a real sidecar on a real database with recording senders.
type harness struct {
	t       *testing.T
	db      *testdb.DB
	s       *seed.Seeder
	ctx     context.Context
	rec     map[string]*channelstest.Recorder
	reg     *channels.Registry
	app     *App
	srv     *httptest.Server
	logs    *syncBuffer
	started bool
}

type harnessOption func(*Config)

func withPipeline(f func(*Options)) harnessOption { return func(c *Config) { f(&c.Pipeline) } }

// testOptions are pipeline settings that keep tests fast.
func testOptions() Options {
	return Options{Workers: 4, BatchSize: 16, QueueBatchSize: 16, Lease: 10 * time.Second, SendTimeout: 5 * time.Second, RetryMax: 3,
		RetryBase: 20 * time.Millisecond, RetryCap: time.Minute, RerouteEvery: 5 * time.Minute, RerouteFor: 24 * time.Hour,
		IdlePoll: 20 * time.Millisecond}
}

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	return newHarnessWith(t, nil, opts...)
}

// newHarnessWith uses the given senders (nil: recording senders).
func newHarnessWith(t *testing.T, reg *channels.Registry, opts ...harnessOption) *harness {
	t.Helper()
	db := testdb.New(t)
	h := &harness{t: t, db: db, s: seed.New(db.DB, db.Prefix), ctx: context.Background(), rec: map[string]*channelstest.Recorder{},
		reg: reg, logs: &syncBuffer{}}
	if h.reg == nil {
		h.reg = channels.NewRegistry()
		for _, ch := range []string{"email", "sms", "notification", "mobile_notification", "tweet", "whatsapp"} {
			r := channelstest.NewRecorder()
			h.rec[ch] = r
			require.NoError(t, h.reg.Add(channels.Name(ch), r))
		}
	}
	h.app = h.newApp(opts...)
	h.srv = httptest.NewServer(h.app.Handler())
	t.Cleanup(func() {
		h.srv.Close()
		if h.started {
			h.app.Stop(5 * time.Second)
		}
		if t.Failed() {
			t.Logf("sidecar logs:\n%s", h.logs.String())
		}
	})
	return h
}

// newApp builds another sidecar process on the same database (a replica).
func (h *harness) newApp(opts ...harnessOption) *App {
	cfg := Config{Token: testToken, DedupWindow: 24 * time.Hour, MaxBacklog: 100000, QueueWorker: true, Pipeline: testOptions(),
		TwilioAuthToken: "twilio-auth-token"}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(cfg, h.db.Mautic, h.reg, log, nil)
}

func (h *harness) start() {
	h.app.Start()
	h.started = true
}

// post sends a form-encoded campaign webhook call, as Mautic does.
func (h *harness) post(fields map[string]string) (int, map[string]any) {
	form := url.Values{}
	for k, v := range fields {
		form.Set(k, v)
	}
	return h.do(http.MethodPost, "/v1/campaign/message", "application/x-www-form-urlencoded", form.Encode(), nil)
}

func (h *harness) do(method, path, contentType, body string, header map[string]string) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	require.NoError(h.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	var out map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(h.t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

// dispatch posts a call and returns the dispatch id, requiring a 200.
func (h *harness) dispatch(contactID, messageID int64, extra ...string) int64 {
	h.t.Helper()
	f := map[string]string{"contact_id": itoa(contactID), "message_id": itoa(messageID)}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	code, body := h.post(f)
	require.Equal(h.t, http.StatusOK, code, "%v", body)
	return int64(body["dispatch_id"].(float64))
}

// get returns the dispatch resource.
func (h *harness) get(id int64) dispatchJSON {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/dispatches/"+itoa(id), nil)
	req.Header.Set("X-Sidecar-Token", testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	var d dispatchJSON
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&d))
	return d
}

// wait polls until the dispatch leaves the accepted state (or matches want).
func (h *harness) wait(id int64, want ...string) dispatchJSON {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d := h.get(id)
		done := d.State != store.Accepted
		if len(want) > 0 {
			done = false
			for _, w := range want {
				if d.State == w {
					done = true
				}
			}
		}
		if done {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("dispatch %d still %s: %+v", id, d.State, d.Trace)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runUntilIdle routes synchronously until nothing is due.
func (h *harness) runUntilIdle(app *App) {
	h.t.Helper()
	for i := 0; i < 1000; i++ {
		n, err := app.pipeline.RunOnce(h.ctx)
		require.NoError(h.t, err)
		if n == 0 {
			return
		}
	}
	h.t.Fatal("the pipeline never became idle")
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// contact seeds a contact reachable on every channel.
func (h *harness) contact(c seed.Contact, pushIDs ...string) int64 {
	h.t.Helper()
	id, err := h.s.Contact(h.ctx, c)
	require.NoError(h.t, err)
	for _, p := range pushIDs {
		require.NoError(h.t, h.s.PushID(h.ctx, id, p, strings.HasPrefix(p, "app-")))
	}
	return id
}

func (h *harness) rule(r seed.Rule) {
	h.t.Helper()
	_, err := h.s.Rule(h.ctx, r)
	require.NoError(h.t, err)
}

// content is the ids of one of each content row.
type content struct {
	email, sms, push, mobile, tweet int64
}

func (h *harness) content() content {
	h.t.Helper()
	var c content
	var err error
	c.email, err = h.s.Email(h.ctx, seed.Email{Name: "Welcome", Subject: "Hello {contactfield=firstname}", HTML: "<html><body>Hi</body></html>",
		FromAddress: "news@example.test"})
	require.NoError(h.t, err)
	c.sms, err = h.s.SMS(h.ctx, seed.SMS{Message: "Hi {contactfield=firstname}"})
	require.NoError(h.t, err)
	c.push, err = h.s.Push(h.ctx, seed.Push{Heading: "Hi", Message: "News"})
	require.NoError(h.t, err)
	c.mobile, err = h.s.Push(h.ctx, seed.Push{Heading: "Hi", Message: "App news", Mobile: true})
	require.NoError(h.t, err)
	c.tweet, err = h.s.Tweet(h.ctx, "t", "Hello", true)
	require.NoError(h.t, err)
	return c
}

func (h *harness) message(chans ...seed.Channel) int64 {
	h.t.Helper()
	id, err := h.s.Message(h.ctx, "MM", chans...)
	require.NoError(h.t, err)
	return id
}

func traceOf(d dispatchJSON) []string {
	var out []string
	for _, e := range d.Trace {
		s := e.Channel + ":" + string(e.Decision)
		if e.Reason != "" {
			s += ":" + string(e.Reason)
		}
		out = append(out, s)
	}
	return out
}

func lim(n int, u mautic.Unit) *mautic.Limit { return &mautic.Limit{Number: n, Unit: u} }

// counted waits until the counters recorded so far are applied to Mautic's
// rows, then returns COUNT(*) of table where where holds.
func (h *harness) counted(table, where string, args ...any) int {
	h.t.Helper()
	require.NoError(h.t, h.app.FlushCounters(h.ctx))
	deadline := time.Now().Add(5 * time.Second)
	for h.db.Count(h.t, "sidecar_counter_deltas", "") > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // another flusher holds some increments
	}
	return h.db.Count(h.t, table, where, args...)
}
