package tweet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h2non/gock"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
)

var testCfg = Config{
	ConsumerKey:    "ck-SECRET-consumer-key",
	ConsumerSecret: "cs-SECRET-consumer-secret",
	AccessToken:    "at-SECRET-access-token",
	AccessSecret:   "as-SECRET-access-secret",
}

func allSecrets() []string { return testCfg.secrets() }

func str(s string) *string { return &s }

func testMessage() channels.Message {
	return channels.Message{
		Key:       "dispatch-3-tweet",
		Channel:   channels.Tweet,
		ChannelID: 2,
		Contact:   channels.Contact{ID: 7, Fields: map[string]*string{"firstname": str("Ada")}},
		To:        "ada_l",
		Tweet:     &channels.TweetContent{ID: 2, Text: "Hello {contactfield=firstname}, our sale starts today"},
	}
}

func newSender(t testing.TB, base string, client *http.Client, log *slog.Logger) *Sender {
	t.Helper()
	cfg := testCfg
	cfg.BaseURL = base
	s, err := New(cfg, client, log)
	require.NoError(t, err)
	return s
}

// parseOAuth splits an OAuth Authorization header into its parameters.
func parseOAuth(t testing.TB, h string) map[string]string {
	t.Helper()
	require.True(t, strings.HasPrefix(h, "OAuth "), "header %q", h)
	out := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(h, "OAuth "), ", ") {
		k, v, ok := strings.Cut(part, "=")
		require.True(t, ok, part)
		out[k] = strings.Trim(v, `"`)
	}
	return out
}

func TestSendRequestThroughInjectedClient(t *testing.T) {
	t.Cleanup(gock.Off)
	client := channelstest.NewClient(t, 5*time.Second)
	s := newSender(t, "", client, nil)
	// Intercept after New: the sender must use the client's current transport.
	gock.InterceptClient(client)
	t.Cleanup(func() { gock.RestoreClient(client) })

	var auth map[string]string
	var body map[string]string
	gock.New("https://api.x.com").
		Post("/2/tweets").
		MatchHeader("Content-Type", "^application/json$").
		AddMatcher(func(req *http.Request, _ *gock.Request) (bool, error) {
			auth = parseOAuth(t, req.Header.Get("Authorization"))
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return false, err
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
			return true, json.Unmarshal(b, &body)
		}).
		Reply(201).
		JSON(map[string]any{"data": map[string]any{"id": "1445880548472328192", "text": "@ada_l Hello Ada"}})

	rcpt, err := s.Send(context.Background(), testMessage())
	require.NoError(t, err)
	require.Equal(t, "1445880548472328192", rcpt.ProviderID)
	require.True(t, gock.IsDone())

	require.Equal(t, map[string]string{"text": "@ada_l Hello Ada, our sale starts today"}, body)
	require.Equal(t, testCfg.ConsumerKey, auth["oauth_consumer_key"])
	require.Equal(t, testCfg.AccessToken, auth["oauth_token"])
	require.Equal(t, "HMAC-SHA1", auth["oauth_signature_method"])
	require.Equal(t, "1.0", auth["oauth_version"])
	for _, k := range []string{"oauth_signature", "oauth_nonce", "oauth_timestamp"} {
		require.NotEmpty(t, auth[k], k)
	}
}

func TestSendStatusTable(t *testing.T) {
	reset := strconv.FormatInt(time.Now().Add(60*time.Second).Unix(), 10)
	cases := []channelstest.StatusCase{
		{Name: "201 created", Status: 201, Body: `{"data":{"id":"144","text":"x","edit_history_tweet_ids":["144"]}}`, Want: channelstest.OK, ProviderID: "144"},
		{Name: "201 garbage", Status: 201, Body: `<html/>`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "201 no id", Status: 201, Body: `{"data":{}}`, Want: channelstest.Transient, ErrContains: "no post id"},
		{Name: "400 invalid", Status: 400, Body: `{"errors":[{"message":"text too long"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid."}`, Want: channelstest.Permanent, ErrContains: "text too long"},
		{Name: "401", Status: 401, Body: `{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}`, Want: channelstest.Permanent, ErrContains: "unauthorized"},
		{Name: "403 duplicate", Status: 403, Body: `{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}`, Want: channelstest.Permanent, ErrContains: "duplicate"},
		{Name: "403 not enrolled", Status: 403, Body: `{"title":"Client Forbidden","detail":"must use keys attached to a Project","reason":"client-not-enrolled"}`, Want: channelstest.Permanent, ErrContains: "client-not-enrolled"},
		{Name: "429 reset header", Status: 429, Header: http.Header{"X-Rate-Limit-Reset": {reset}}, Body: `{"title":"Too Many Requests","detail":"Too Many Requests","status":429}`, Want: channelstest.Transient, RetryAfter: 60 * time.Second},
		{Name: "429 retry after", Status: 429, Header: http.Header{"Retry-After": {"9"}}, Want: channelstest.Transient, RetryAfter: 9 * time.Second},
		{Name: "429 bare", Status: 429, Want: channelstest.Transient},
		{Name: "500", Status: 500, Body: `{"title":"Internal Server Error"}`, Want: channelstest.Transient},
		{Name: "503 html", Status: 503, Body: `<html>over capacity</html>`, Want: channelstest.Transient, ErrContains: "not json"},
	}
	channelstest.RunStatusTable(t, func(t testing.TB, base string, c *http.Client) channels.Sender {
		return newSender(t, base, c, nil)
	}, testMessage(), cases)
}

func TestSendWithoutCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	s := newSender(t, srv.URL, channelstest.NewClient(t, 5*time.Second), nil)
	tests := []struct {
		name string
		edit func(*channels.Message)
		want channelstest.Outcome
	}{
		{"empty handle", func(m *channels.Message) { m.To = "" }, channelstest.Unreachable},
		{"only @", func(m *channels.Message) { m.To = " @ " }, channelstest.Unreachable},
		{"invalid handle", func(m *channels.Message) { m.To = "ada lovelace" }, channelstest.Unreachable},
		{"handle too long", func(m *channels.Message) { m.To = "abcdefghijklmnop" }, channelstest.Unreachable},
		{"no content", func(m *channels.Message) { m.Tweet = nil }, channelstest.Permanent},
		{"empty text", func(m *channels.Message) { m.Tweet = &channels.TweetContent{Text: "{contactfield=lastname}"} }, channelstest.Permanent},
		{"too long once addressed", func(m *channels.Message) { m.Tweet = &channels.TweetContent{Text: strings.Repeat("a", 275)} }, channelstest.Permanent},
		{"too long once rendered", func(m *channels.Message) {
			m.Contact.Fields["firstname"] = str(strings.Repeat("Ada", 100))
		}, channelstest.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := testMessage()
			msg.Contact.Fields = map[string]*string{"firstname": str("Ada")}
			tc.edit(&msg)
			_, err := s.Send(context.Background(), msg)
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
		})
	}
	require.Zero(t, calls.Load())
}

func TestNormalizeHandle(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"ada", "ada"}, {"@Ada_L", "Ada_L"}, {" @ada ", "ada"},
		{"https://twitter.com/ada", "ada"}, {"https://x.com/ada/", "ada"}, {"www.twitter.com/ada", "ada"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := NormalizeHandle(tc.raw)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCompose(t *testing.T) {
	tests := []struct{ name, text, handle, want string }{
		{"prefix", "Hello", "ada", "@ada Hello"},
		{"already mentioned", "Hello @ada!", "ada", "Hello @ada!"},
		{"mentioned other case", "Hi @ADA", "ada", "Hi @ADA"},
		{"longer handle is not a mention", "Hi @ada_l", "ada", "@ada Hi @ada_l"},
		{"email is not a mention", "Mail bob@ada.com", "ada", "@ada Mail bob@ada.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Compose(tc.text, tc.handle))
		})
	}
}

func TestLength(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"ascii", "hello", 5},
		{"accents", "café", 4},
		{"cjk counts two", "日本", 4},
		{"emoji counts two", "👍", 2},
		{"url counts 23", "see https://example.com/a/very/long/path/that/goes/on/and/on now", 4 + 23 + 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Length(tc.text))
		})
	}
}

func TestSendTransportFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration
		want    string
	}{
		{"client timeout", channelstest.Hang, 50 * time.Millisecond, "timed out"},
		{"connection reset", channelstest.Reset, 5 * time.Second, "x request"},
		{"body cut short", channelstest.CutShort(201, "application/json", `{"data":{"id":"1`), 5 * time.Second, "cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			s := newSender(t, srv.URL, channelstest.NewClient(t, tc.timeout), nil)
			_, err := s.Send(context.Background(), testMessage())
			require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err), "err: %v", err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), srv.URL)
		})
	}
}

func TestNoSecretLeak(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			b, _ := json.Marshal(map[string]string{"title": "echo", "detail": r.Header.Get("Authorization")})
			_, _ = w.Write(b)
		}
	}
	handlers := map[string]http.HandlerFunc{
		"400 echo": echo(400), "401 echo": echo(401), "403 echo": echo(403), "429 echo": echo(429), "500 echo": echo(500),
		"garbage echo": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, r.Header.Get("Authorization")+" "+strings.Join(allSecrets(), " "))
		},
		"timeout": channelstest.Hang,
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			s := newSender(t, srv.URL, channelstest.NewClient(t, 200*time.Millisecond), log)
			_, err := s.Send(context.Background(), testMessage())
			channelstest.AssertNoSecret(t, err, allSecrets()...)
		})
	}
	channelstest.AssertNoSecretIn(t, "log", logs.String(), allSecrets()...)
	channelstest.AssertNoSecretIn(t, "String()", fmt.Sprintf("%v %+v %#v", testCfg, testCfg, testCfg), allSecrets()...)
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "cfg", testCfg)
	channelstest.AssertNoSecretIn(t, "slog", js.String(), allSecrets()...)
	bad := testCfg
	bad.BaseURL = "nope"
	_, err := New(bad, nil, nil)
	channelstest.AssertNoSecret(t, err, allSecrets()...)
}

func TestErrorLogLevel(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantError bool
	}{
		{"401 logs an error", 401, `{"title":"Unauthorized"}`, true},
		{"403 forbidden logs an error", 403, `{"title":"Forbidden","detail":"You are not permitted to perform this action."}`, true},
		{"403 duplicate does not", 403, `{"title":"Forbidden","detail":"You are not allowed to create a Tweet with duplicate content."}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			var logs bytes.Buffer
			s := newSender(t, srv.URL, channelstest.NewClient(t, 5*time.Second), slog.New(slog.NewJSONHandler(&logs, nil)))
			_, err := s.Send(context.Background(), testMessage())
			require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
			require.Equal(t, tc.wantError, strings.Contains(logs.String(), `"level":"ERROR"`), logs.String())
		})
	}
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, testCfg.Validate())
	err := Config{BaseURL: "x"}.Validate()
	for _, want := range []string{"consumer key is required", "consumer secret is required", "access token is required", "access secret is required", "base url"} {
		require.ErrorContains(t, err, want)
	}
	_, err = New(testCfg, nil, nil)
	require.ErrorContains(t, err, "nil http client")
}
