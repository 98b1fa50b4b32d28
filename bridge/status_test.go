package bridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// statusFixture is a few routed dispatches, one of each outcome.
type statusFixture struct {
	sent      int64 // email DNC, sent on sms
	queued    int64 // email over its limit, sms DNC: queued on email
	failed    int64 // no address anywhere
	fellBack  int64 // email refused by the provider, sent on sms
	queueRows int64 // pending message_queue rows the fixture leaves
}

// seedStatus routes the fixture's dispatches (the harness is started).
func seedStatus(h *harness) statusFixture {
	h.t.Helper()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email}, seed.Channel{Channel: "sms", ChannelID: c.sms})

	a := h.contact(seed.Contact{Email: "dnc@example.test", Mobile: "+15550005001"})
	_, err := h.s.DNC(h.ctx, a, "email", mautic.DNCUnsubscribed)
	require.NoError(h.t, err)

	b := h.contact(seed.Contact{Email: "busy@example.test", Mobile: "+15550005002"})
	h.rule(seed.Rule{ContactID: b, Channel: "email", Limit: lim(1, mautic.Day)})
	require.NoError(h.t, h.s.EmailStat(h.ctx, b, c.email, time.Now().UTC().Add(-time.Hour)))
	_, err = h.s.DNC(h.ctx, b, "sms", mautic.DNCManual)
	require.NoError(h.t, err)

	cc := h.contact(seed.Contact{FirstName: "Nobody"})

	d := h.contact(seed.Contact{Email: "refused@example.test", Mobile: "+15550005004"})
	h.rec["email"].Fail("refused@example.test", channelstest.Failure{Kind: channels.KindPermanent})

	h.start()
	f := statusFixture{sent: h.dispatch(a, msg), queued: h.dispatch(b, msg), failed: h.dispatch(cc, msg), fellBack: h.dispatch(d, msg),
		queueRows: 1}
	require.Equal(h.t, "sent", h.wait(f.sent).State)
	require.Equal(h.t, "queued", h.wait(f.queued).State)
	require.Equal(h.t, "failed", h.wait(f.failed).State)
	require.Equal(h.t, "sent", h.wait(f.fellBack).State)
	return f
}

// noRedirect is a client that shows redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page sends a request to the status page's routes and returns the answer
// and its body.
func (h *harness) page(method, path string, form url.Values, header map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	require.NoError(h.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect().Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, string(raw)
}

func sessionOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// signIn posts the right token and returns the session cookie.
func (h *harness) signIn() *http.Cookie {
	h.t.Helper()
	resp, _ := h.page(http.MethodPost, "/login", url.Values{"token": {testToken}}, nil)
	require.Equal(h.t, http.StatusSeeOther, resp.StatusCode)
	ck := sessionOf(resp)
	require.NotNil(h.t, ck)
	return ck
}

func TestStatusLoginFormWithoutToken(t *testing.T) {
	h := newHarness(t)
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	id := h.dispatch(h.contact(seed.Contact{Email: "x@example.test"}), msg)
	h.wait(id)

	for name, hdr := range map[string]map[string]string{
		"no token":     nil,
		"wrong bearer": {"Authorization": "Bearer nope"},
		"wrong header": {"X-Sidecar-Token": "nope"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := h.page(http.MethodGet, "/", nil, hdr)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Contains(t, body, `<form id="login"`)
			require.Contains(t, body, `name="token" type="password"`)
			require.NotContains(t, body, `id="dashboard"`, "no data without a token")
			require.NotContains(t, body, "dispatch-"+itoa(id))
			require.NotContains(t, body, "<script")
			require.Nil(t, sessionOf(resp))
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
			require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
		})
	}

	t.Run("a bearer token shows the page", func(t *testing.T) {
		resp, body := h.page(http.MethodGet, "/", nil, map[string]string{"Authorization": "Bearer " + testToken})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `id="dispatch-`+itoa(id)+`"`)
		require.NotContains(t, body, testToken)
	})
}

func TestStatusLogin(t *testing.T) {
	h := newHarness(t)

	t.Run("wrong token", func(t *testing.T) {
		resp, body := h.page(http.MethodPost, "/login", url.Values{"token": {"wrong-token-guess"}}, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Nil(t, sessionOf(resp), "no cookie")
		require.Empty(t, resp.Header.Values("Set-Cookie"))
		require.Contains(t, body, `<form id="login"`)
		require.Contains(t, body, "Wrong token.")
		require.NotContains(t, body, "wrong-token-guess", "the token is never echoed")
	})

	t.Run("empty token", func(t *testing.T) {
		resp, _ := h.page(http.MethodPost, "/login", url.Values{"token": {""}}, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Nil(t, sessionOf(resp))
	})

	t.Run("right token", func(t *testing.T) {
		resp, body := h.page(http.MethodPost, "/login", url.Values{"token": {testToken}}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/", resp.Header.Get("Location"))
		require.NotContains(t, body, testToken)
		ck := sessionOf(resp)
		require.NotNil(t, ck)
		require.Equal(t, testToken, ck.Value)
		require.True(t, ck.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
		require.Equal(t, "/", ck.Path)
		require.False(t, ck.Secure, "plain HTTP: no Secure flag")
		raw := resp.Header.Get("Set-Cookie")
		require.Contains(t, raw, "HttpOnly")
		require.Contains(t, raw, "SameSite=Strict")

		resp, body = h.page(http.MethodGet, "/", nil, nil, ck)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `id="dashboard"`)
	})

	t.Run("a token with surrounding blanks", func(t *testing.T) {
		resp, _ := h.page(http.MethodPost, "/login", url.Values{"token": {" " + testToken + "\n"}}, nil)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, testToken, sessionOf(resp).Value)
	})

	t.Run("cross-site posts are refused", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"origin":         {"Origin": "https://evil.example"},
			"null origin":    {"Origin": "null"},
			"sec-fetch-site": {"Sec-Fetch-Site": "cross-site"},
			"referer":        {"Referer": "https://evil.example/page"},
		} {
			resp, _ := h.page(http.MethodPost, "/login", url.Values{"token": {testToken}}, hdr)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
			require.Nil(t, sessionOf(resp), name)
		}
		u, err := url.Parse(h.srv.URL)
		require.NoError(t, err)
		for name, hdr := range map[string]map[string]string{
			"same origin":  {"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"},
			"same referer": {"Referer": "http://" + u.Host + "/"},
		} {
			resp, _ := h.page(http.MethodPost, "/login", url.Values{"token": {testToken}}, hdr)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, name)
		}
	})

	t.Run("body limit", func(t *testing.T) {
		resp, body := h.page(http.MethodPost, "/login", url.Values{"token": {strings.Repeat("x", 8000)}}, nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		require.Nil(t, sessionOf(resp))
		require.NotContains(t, body, "xxxxxxxx")
	})

	t.Run("logout clears the cookie", func(t *testing.T) {
		ck := h.signIn()
		resp, _ := h.page(http.MethodPost, "/logout", url.Values{}, nil, ck)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		cleared := sessionOf(resp)
		require.NotNil(t, cleared)
		require.Empty(t, cleared.Value)
		require.Negative(t, cleared.MaxAge, "Max-Age=0: the browser deletes it")
		require.True(t, cleared.HttpOnly)
		require.Equal(t, "/", cleared.Path)
		resp, body := h.page(http.MethodGet, "/", nil, nil, cleared)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `<form id="login"`)
	})

	t.Run("a stale cookie shows the form and is cleared", func(t *testing.T) {
		resp, body := h.page(http.MethodGet, "/", nil, nil, &http.Cookie{Name: sessionCookie, Value: "old-token"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, "no longer valid")
		require.NotContains(t, body, "old-token")
		require.NotNil(t, sessionOf(resp))
		require.Negative(t, sessionOf(resp).MaxAge)
	})
}

func TestStatusLoginSecureCookieOverTLS(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewTLSServer(h.app.Handler())
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(srv.URL+"/login", url.Values{"token": {testToken}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	ck := sessionOf(resp)
	require.NotNil(t, ck)
	require.True(t, ck.Secure)
	require.True(t, ck.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
}

func TestStatusPageShowsDispatches(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Version = "v9.8.7-test" })
	f := seedStatus(h)
	ck := h.signIn()

	resp, body := h.page(http.MethodGet, "/", nil, nil, ck)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, body, testToken, "the token never appears in the page")
	require.Contains(t, body, `<meta http-equiv="refresh" content="10">`)
	require.Contains(t, body, `<b id="version">v9.8.7-test</b>`)
	require.Regexp(t, `<time id="rendered">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>`, body)
	require.NotContains(t, body, "<script")

	row := func(id int64) string {
		m := regexp.MustCompile(`(?s)<tr id="dispatch-` + itoa(id) + `".*?</tr>`).FindString(body)
		require.NotEmpty(t, m, "dispatch %d is listed", id)
		return m
	}
	sent := row(f.sent)
	require.Contains(t, sent, `data-state="sent"`)
	require.Contains(t, sent, `<td data-label="Channel">sms</td>`)
	require.Contains(t, sent, `<span class="t-ch">email</span> <span class="t-dec d-skipped">skipped</span> <span class="t-reason">dnc</span>`)
	queued := row(f.queued)
	require.Contains(t, queued, `data-state="queued"`)
	require.Contains(t, queued, `<span class="t-reason">frequency</span>`)
	require.Contains(t, queued, "queue #")
	failed := row(f.failed)
	require.Contains(t, failed, `data-state="failed"`)
	require.Contains(t, failed, `<span class="t-reason">no_address</span>`)
	fell := row(f.fellBack)
	require.Contains(t, fell, `<span class="t-reason">provider_permanent</span>`)
	require.Contains(t, fell, `<td class="num" data-label="Attempts">2</td>`, "two provider calls: email refused, then sms")

	// Newest first (updated_at, then id, descending). The order the four
	// were routed in is the workers', not the order they were created in,
	// so the expectation comes from the rows themselves.
	type stamp struct {
		ID      int64     `db:"id"`
		Updated time.Time `db:"updated_at"`
	}
	var stamps []stamp
	require.NoError(t, h.db.Select(&stamps, "SELECT id, updated_at FROM "+h.db.T("sidecar_dispatches")+" WHERE id IN (?,?,?,?)",
		f.sent, f.queued, f.failed, f.fellBack))
	require.Len(t, stamps, 4)
	sort.Slice(stamps, func(i, j int) bool {
		if !stamps[i].Updated.Equal(stamps[j].Updated) {
			return stamps[i].Updated.After(stamps[j].Updated)
		}
		return stamps[i].ID > stamps[j].ID
	})
	prev := -1
	for _, st := range stamps {
		at := strings.Index(body, `id="dispatch-`+itoa(st.ID)+`"`)
		require.Greater(t, at, prev, "dispatch %d (updated %s) is listed after the ones updated later", st.ID, st.Updated.Format(time.RFC3339Nano))
		prev = at
	}

	// Counts: now and over the last hour.
	require.Contains(t, body, `id="queue-pending">1<`)
	require.Contains(t, body, `id="queue-due">0<`)
	require.Contains(t, body, `id="backlog">0<`)
	require.Contains(t, body, `id="hour-sent">2<`)
	require.Contains(t, body, `id="hour-queued">1<`)
	require.Contains(t, body, `id="hour-failed">1<`)
	require.Contains(t, body, `<tr data-channel="sms"><td>sms</td><td class="num">2</td><td class="num">0</td><td class="num">1</td></tr>`,
		"the failed dispatch counts under sms, the last channel its trace reached")
	require.Contains(t, body, `<tr data-channel="email"><td>email</td><td class="num">0</td><td class="num">1</td><td class="num">0</td></tr>`)
	require.Contains(t, body, "From the 4 dispatches updated since")

	// The charts: inline SVG, one bar per channel and state, per channel and reason.
	require.Contains(t, body, `<svg id="chart-channels"`)
	require.Regexp(t, `<rect class="bar-sent" [^>]*data-channel="sms" data-kind="sent"><title>sms: 2 sent</title>`, body)
	require.Regexp(t, `<rect class="bar-queued" [^>]*data-channel="email" data-kind="queued">`, body)
	require.Contains(t, body, `<svg id="chart-reasons"`)
	require.Regexp(t, `<rect class="bar-skip" [^>]*data-channel="email" data-kind="dnc"><title>email dnc \(skipped\): 1</title>`, body)
	require.Regexp(t, `<rect class="bar-skip" [^>]*data-channel="sms" data-kind="no_address">`, body)
	require.Regexp(t, `<rect class="bar-failure" [^>]*data-channel="email" data-kind="provider_permanent">`, body)

	// The stylesheet the page links is served.
	href := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)">`).FindStringSubmatch(body)
	require.Len(t, href, 2)
	resp, css := h.page(http.MethodGet, "/"+href[1], nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/css; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, css, ".chart")

	// Filter by state.
	resp, body = h.page(http.MethodGet, "/?state=failed", nil, nil, ck)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `id="dispatch-`+itoa(f.failed)+`"`)
	require.NotContains(t, body, `id="dispatch-`+itoa(f.sent)+`"`)
	require.Contains(t, body, `<a href="?state=failed" class="active" aria-current="page">failed</a>`)
	resp, body = h.page(http.MethodGet, "/?state=bogus", nil, nil, ck)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `id="dispatch-`+itoa(f.sent)+`"`, "an unknown state shows everything")
	require.NotContains(t, body, "bogus")
}

func TestStatusPageEscapesTrace(t *testing.T) {
	h := newHarness(t)
	ck := h.signIn()
	now := time.Now().UTC()
	trace := `[{"channel":"<img src=x onerror=alert(2)>","decision":"skipped","reason":"dnc"},` +
		`{"channel":"email","decision":"failed_permanent","reason":"provider_permanent","detail":"<script>alert(1)</script>"}]`
	h.db.MustExec(t, "INSERT INTO {p}sidecar_dispatches (id, state, contact_id, message_id, attempts, trace, run_at, created_at, updated_at)"+
		" VALUES (900000001, 'failed', 5, 6, 1, ?, ?, ?, ?)", trace, now, now, now)

	resp, body := h.page(http.MethodGet, "/", nil, nil, ck)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `id="dispatch-900000001"`)
	require.NotContains(t, body, "<script>alert(1)</script>")
	require.NotContains(t, body, "<script")
	require.Contains(t, body, `&lt;script&gt;alert(1)&lt;/script&gt;`)
	require.NotContains(t, body, "<img src=x")
	require.Contains(t, body, `&lt;img src=x onerror=alert(2)&gt;`)
	require.Contains(t, body, `data-channel="&lt;img src=x onerror=alert(2)&gt;"`, "escaped inside the SVG too")
}

func TestStatusSessionCookieOnAPI(t *testing.T) {
	h := newHarness(t)
	h.start()
	c := h.content()
	msg := h.message(seed.Channel{Channel: "email", ChannelID: c.email})
	id := h.dispatch(h.contact(seed.Contact{Email: "api@example.test"}), msg)
	h.wait(id)
	ck := h.signIn()

	resp, body := h.page(http.MethodGet, "/v1/dispatches/"+itoa(id), nil, nil, ck)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"state":"sent"`)
	resp, _ = h.page(http.MethodGet, "/v1/dispatches/"+itoa(id), nil, nil, &http.Cookie{Name: sessionCookie, Value: "nope"})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = h.page(http.MethodGet, "/v1/dispatches/"+itoa(id), nil, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestStatusSummarize(t *testing.T) {
	d := func(state, channel, trace string) store.Dispatch {
		return store.Dispatch{State: state, Channel: channel, Trace: []byte(trace)}
	}
	list := []store.Dispatch{
		d(store.Sent, "sms", `[{"channel":"email","decision":"skipped","reason":"dnc"},{"channel":"sms","decision":"sent"}]`),
		d(store.Sent, "sms", `[{"channel":"email","decision":"failed_transient","reason":"provider_transient"},`+
			`{"channel":"email","decision":"failed_transient","reason":"provider_transient_exhausted"},{"channel":"sms","decision":"sent"}]`),
		d(store.Queued, "email", `[{"channel":"email","decision":"skipped","reason":"frequency"}]`),
		d(store.Failed, "", `[{"channel":"email","decision":"skipped","reason":"dnc"},{"channel":"sms","decision":"failed_permanent","reason":"provider_permanent"}]`),
		d(store.Failed, "", `[]`),
		d(store.Accepted, "", `not json`),
		d(store.Sent, "email", `[]`), // beyond the limit
	}
	s := summarize(list, 6)
	require.True(t, s.Truncated)
	require.Equal(t, 6, s.Rows)
	require.Equal(t, [4]int{2, 1, 2, 1}, [4]int{s.Sent, s.Queued, s.Failed, s.Accepted})
	require.Equal(t, []channelTotals{{Channel: noChannel, Failed: 1}, {Channel: "email", Queued: 1}, {Channel: "sms", Sent: 2, Failed: 1}}, s.Channels)
	require.Equal(t, []reasonCount{
		{Channel: "email", Reason: "dnc", Count: 2},
		{Channel: "email", Reason: "frequency", Count: 1},
		{Channel: "email", Reason: "provider_transient_exhausted", Failure: true, Count: 1},
		{Channel: "sms", Reason: "provider_permanent", Failure: true, Count: 1},
	}, s.Reasons, "transient tries that were retried are not a reason to pass a channel over")

	require.Len(t, s.ChannelChart.Rows, 3)
	sms := s.ChannelChart.Rows[2]
	require.Equal(t, "sms", sms.Label)
	require.Equal(t, "3", sms.Value)
	require.Len(t, sms.Segments, 2)
	width := func(s chartSegment) float64 {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s.Width, "%"), 64)
		require.NoError(t, err)
		return v
	}
	require.InDelta(t, chartRoom, width(sms.Segments[0])+width(sms.Segments[1]), 0.02, "the largest total fills the room")
	require.Equal(t, "0%", sms.Segments[0].X)
	require.Equal(t, sms.Segments[0].Width, sms.Segments[1].X, "stacked")
	require.Equal(t, "bar-sent", sms.Segments[0].Class)
	require.Equal(t, "bar-failed", sms.Segments[1].Class)
	require.Len(t, s.ReasonChart.Rows, 4)
	require.Equal(t, "email · dnc", s.ReasonChart.Rows[0].Label)

	empty := summarize(nil, 10)
	require.False(t, empty.Truncated)
	require.Empty(t, empty.ChannelChart.Rows)

	require.Equal(t, "0", formatCount(0))
	require.Equal(t, "999", formatCount(999))
	require.Equal(t, "20,000", formatCount(20000))
	require.Equal(t, "1,234,567", formatCount(int64(1234567)))
	require.Equal(t, "-1,000", formatCount(-1000))
	require.Equal(t, "abc…", shorten("abcdef", 3))
	require.Equal(t, "abc", shorten("abc", 3))
}

func TestSessionCookieSecureBehindTLSProxy(t *testing.T) {
	h := newHarness(t)
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("token="+testToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	rec := httptest.NewRecorder()
	h.app.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Contains(t, rec.Header().Get("Set-Cookie"), "Secure")
}
