package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h2non/gock"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
)

const (
	testApp = "5eb5a37e-b458-11e3-ac11-000c2940e62c"
	testKey = "os-rest-key-SECRET-91b2"
)

func str(s string) *string { return &s }

func webMessage() channels.Message {
	return channels.Message{
		Key:       "dispatch-9-notification",
		Channel:   channels.Notification,
		ChannelID: 3,
		Contact:   channels.Contact{ID: 7, Fields: map[string]*string{"firstname": str("Ada")}},
		PushIDs:   []string{"player-1", "player-2"},
		Push: &channels.PushContent{
			ID: 3, Heading: "Hello {contactfield=firstname}", Message: "News for {contactfield=firstname|you}",
			URL: "https://example.com/news", Button: "Read",
		},
	}
}

func mobileMessage() channels.Message {
	m := webMessage()
	m.Channel = channels.MobileNotification
	m.Push = &channels.PushContent{
		ID: 4, Heading: "Hi", Message: "Open the app, {contactfield=firstname}", Button: "Open", Mobile: true,
		MobileSettings: map[string]any{
			"ios_subtitle": "Sub", "ios_sound": "", "ios_badges": "Increase", "ios_badgeCount": "2",
			"ios_contentAvailable": "1", "ios_mutableContent": false, "ios_media": "https://example.com/a.png",
			"android_small_icon": "ic_stat", "android_led_color": "ff0000", "android_accent_color": "",
			"android_lockscreen_visibility": int64(1), "android_group_key": "news",
			"additional_data": map[string]any{"list": []any{
				map[string]any{"label": "screen", "value": "news"},
				map[string]any{"label": "id", "value": "42"},
			}},
		},
	}
	return m
}

func newSender(t testing.TB, base string, client *http.Client, log *slog.Logger) *Sender {
	t.Helper()
	s, err := New(Config{AppID: testApp, RESTAPIKey: testKey, BaseURL: base}, client, log)
	require.NoError(t, err)
	return s
}

func captureJSON(dst *map[string]any) gock.MatchFunc {
	return func(req *http.Request, _ *gock.Request) (bool, error) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return false, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		return true, json.Unmarshal(b, dst)
	}
}

func TestSendRequest(t *testing.T) {
	key := IdempotencyKey("dispatch-9-notification")
	tests := []struct {
		name string
		msg  channels.Message
		want string // JSON
	}{
		{
			name: "web",
			msg:  webMessage(),
			want: `{"app_id":"` + testApp + `","include_player_ids":["player-1","player-2"],
				"contents":{"en":"News for Ada"},"headings":{"en":"Hello Ada"},"url":"https://example.com/news",
				"web_buttons":[{"id":"Hello Ada","text":"Read","url":"https://example.com/news"}],
				"idempotency_key":"` + key + `"}`,
		},
		{
			name: "web without url has no button",
			msg: func() channels.Message {
				m := webMessage()
				m.Push.URL = ""
				m.Push.Heading = ""
				return m
			}(),
			want: `{"app_id":"` + testApp + `","include_player_ids":["player-1","player-2"],
				"contents":{"en":"News for Ada"},"idempotency_key":"` + key + `"}`,
		},
		{
			name: "mobile",
			msg:  mobileMessage(),
			want: `{"app_id":"` + testApp + `","include_player_ids":["player-1","player-2"],
				"contents":{"en":"Open the app, Ada"},"headings":{"en":"Hi"},
				"buttons":[{"id":"Hi","text":"Open"}],"idempotency_key":"` + key + `",
				"subtitle":{"en":"Sub"},"ios_sound":"default","ios_badgeType":"Increase","ios_badgeCount":2,
				"content_available":true,"mutable_content":false,"ios_attachments":{"id_media":"https://example.com/a.png"},
				"small_icon":"ic_stat","android_led_color":"FFFF0000","android_visibility":1,"android_group":"news",
				"data":{"screen":"news","id":"42"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(gock.Off)
			client := channelstest.NewClient(t, 5*time.Second)
			gock.InterceptClient(client)
			t.Cleanup(func() { gock.RestoreClient(client) })

			var got map[string]any
			gock.New("https://onesignal.com").
				Post("/api/v1/notifications").
				MatchHeader("Authorization", "^"+regexp.QuoteMeta("Basic "+testKey)+"$").
				MatchHeader("Content-Type", "^application/json$").
				AddMatcher(captureJSON(&got)).
				Reply(200).
				JSON(map[string]any{"id": "b98881cc-1e94-4366-bbd9-db8f3429292b", "recipients": 2, "external_id": nil})

			s := newSender(t, "", client, nil)
			rcpt, err := s.Send(context.Background(), tc.msg)
			require.NoError(t, err)
			require.Equal(t, "b98881cc-1e94-4366-bbd9-db8f3429292b", rcpt.ProviderID)
			gotJSON, _ := json.Marshal(got)
			require.JSONEq(t, tc.want, string(gotJSON))
			require.True(t, gock.IsDone())
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	uuidV5 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a := IdempotencyKey("dispatch-1-notification")
	require.Regexp(t, uuidV5, a)
	require.Equal(t, a, IdempotencyKey("dispatch-1-notification"), "deterministic")
	require.NotEqual(t, a, IdempotencyKey("dispatch-2-notification"))
	require.Regexp(t, uuidV5, IdempotencyKey(""))
}

func TestSendStatusTable(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	cases := []channelstest.StatusCase{
		{Name: "200 created", Status: 200, Header: jsonHeader, Body: `{"id":"n-1","recipients":2,"external_id":null}`, Want: channelstest.OK, ProviderID: "n-1"},
		{Name: "200 some players invalid", Status: 200, Body: `{"id":"n-2","recipients":1,"errors":{"invalid_player_ids":["player-2"]}}`, Want: channelstest.OK, ProviderID: "n-2"},
		{Name: "200 all players invalid", Status: 200, Body: `{"id":"n-3","recipients":0,"errors":{"invalid_player_ids":["player-1","player-2"]}}`, Want: channelstest.Unreachable, ErrContains: "not subscribed"},
		{Name: "200 empty id", Status: 200, Body: `{"id":"","recipients":0}`, Want: channelstest.Unreachable, ErrContains: "not subscribed"},
		{Name: "200 string errors", Status: 200, Body: `{"id":"","recipients":0,"errors":["All included players are not subscribed"]}`, Want: channelstest.Unreachable, ErrContains: "all included players"},
		{Name: "200 garbage", Status: 200, Body: `<html></html>`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "200 truncated", Status: 200, Body: `{"id":"n-`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "400 not subscribed", Status: 400, Body: `{"errors":["All included players are not subscribed"]}`, Want: channelstest.Unreachable},
		{Name: "400 invalid ids object", Status: 400, Body: `{"errors":{"invalid_player_ids":["player-1","player-2"]}}`, Want: channelstest.Unreachable},
		{Name: "400 other", Status: 400, Body: `{"errors":["Message Notifications must have English language content"]}`, Want: channelstest.Permanent, ErrContains: "english language"},
		{Name: "400 not json", Status: 400, Body: `bad`, Want: channelstest.Permanent, ErrContains: "not json"},
		{Name: "401", Status: 401, Body: `{"errors":["Please include a case-sensitive header of Authorization: Basic <YOUR-REST-API-KEY-HERE> with a valid REST API key."]}`, Want: channelstest.Permanent},
		{Name: "403", Status: 403, Body: `{"errors":["forbidden"]}`, Want: channelstest.Permanent},
		{Name: "404", Status: 404, Body: `{"errors":["app not found"]}`, Want: channelstest.Permanent},
		{Name: "429", Status: 429, Header: http.Header{"Retry-After": {"12"}}, Body: `{"errors":["API rate limit exceeded"]}`, Want: channelstest.Transient, RetryAfter: 12 * time.Second},
		{Name: "500", Status: 500, Body: `{"errors":["Internal server error"]}`, Want: channelstest.Transient},
		{Name: "502 html", Status: 502, Body: `<html>bad gateway</html>`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "503 retry date", Status: 503, Header: http.Header{"Retry-After": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}}, Want: channelstest.Transient, RetryAfter: 90 * time.Second},
	}
	channelstest.RunStatusTable(t, func(t testing.TB, base string, c *http.Client) channels.Sender {
		return newSender(t, base, c, nil)
	}, webMessage(), cases)
}

func TestSendWithoutCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.WriteString(w, `{"id":"n"}`)
	}))
	t.Cleanup(srv.Close)
	s := newSender(t, srv.URL, channelstest.NewClient(t, 5*time.Second), nil)
	tests := []struct {
		name string
		msg  func() channels.Message
		want channelstest.Outcome
	}{
		{"no player ids", func() channels.Message { m := webMessage(); m.PushIDs = nil; return m }, channelstest.Unreachable},
		{"blank player ids", func() channels.Message { m := webMessage(); m.PushIDs = []string{" ", ""}; return m }, channelstest.Unreachable},
		{"no content", func() channels.Message { m := webMessage(); m.Push = nil; return m }, channelstest.Permanent},
		{"mobile content on web channel", func() channels.Message { m := mobileMessage(); m.Channel = channels.Notification; return m }, channelstest.Permanent},
		{"web content on mobile channel", func() channels.Message { m := webMessage(); m.Channel = channels.MobileNotification; return m }, channelstest.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), tc.msg())
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
		})
	}
	require.Zero(t, calls.Load())
}

func TestSendTransportFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration
		want    string
	}{
		{"client timeout", channelstest.Hang, 50 * time.Millisecond, "timed out"},
		{"connection reset", channelstest.Reset, 5 * time.Second, "onesignal request"},
		{"body cut short", channelstest.CutShort(200, "application/json", `{"id":"n`), 5 * time.Second, "cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			s := newSender(t, srv.URL, channelstest.NewClient(t, tc.timeout), nil)
			_, err := s.Send(context.Background(), webMessage())
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
			_, _ = fmt.Fprintf(w, `{"errors":["bad header %s"]}`, r.Header.Get("Authorization"))
		}
	}
	handlers := map[string]http.HandlerFunc{
		"400 echo": echo(400), "401 echo": echo(401), "403 echo": echo(403), "500 echo": echo(500),
		"200 echo": func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, `{"id":"","errors":["%s"]}`, r.Header.Get("Authorization"))
		},
		"garbage echo": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, r.Header.Get("Authorization"))
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
			_, err := s.Send(context.Background(), webMessage())
			channelstest.AssertNoSecret(t, err, testKey)
		})
	}
	channelstest.AssertNoSecretIn(t, "log", logs.String(), testKey)
	cfg := Config{AppID: testApp, RESTAPIKey: testKey}
	channelstest.AssertNoSecretIn(t, "String()", fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), testKey)
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "cfg", cfg)
	channelstest.AssertNoSecretIn(t, "slog", js.String(), testKey)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{AppID: testApp, RESTAPIKey: testKey}, ""},
		{"valid base", Config{AppID: testApp, RESTAPIKey: testKey, BaseURL: "http://127.0.0.1:1"}, ""},
		{"no app", Config{RESTAPIKey: testKey}, "app id is required"},
		{"no key", Config{AppID: testApp}, "rest api key is required"},
		{"key with newline", Config{AppID: testApp, RESTAPIKey: "a\nb"}, "line breaks"},
		{"bad base", Config{AppID: testApp, RESTAPIKey: testKey, BaseURL: "onesignal.com"}, "base url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	_, err := New(Config{AppID: testApp, RESTAPIKey: testKey}, nil, nil)
	require.ErrorContains(t, err, "nil http client")
}

func TestErrorLogLevel(t *testing.T) {
	tests := []struct {
		status    int
		wantError bool
	}{{401, true}, {403, true}, {400, false}, {500, false}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, `{"errors":["no"]}`)
			}))
			t.Cleanup(srv.Close)
			var logs bytes.Buffer
			s := newSender(t, srv.URL, channelstest.NewClient(t, 5*time.Second), slog.New(slog.NewJSONHandler(&logs, nil)))
			_, err := s.Send(context.Background(), webMessage())
			require.Error(t, err)
			require.Equal(t, tc.wantError, bytes.Contains(logs.Bytes(), []byte(`"level":"ERROR"`)), logs.String())
		})
	}
}
