package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h2non/gock"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
)

const testSecret = "whsec-SECRET-0b9c4d"

func str(s string) *string { return &s }

func testMessage() channels.Message {
	return channels.Message{
		Key:        "dispatch-11-whatsapp",
		Channel:    "whatsapp",
		ChannelID:  0,
		MessageID:  3,
		CampaignID: 2,
		EventID:    41,
		Contact: channels.Contact{
			ID:      7,
			Fields:  map[string]*string{"firstname": str("Ada"), "email": str("ada@example.com"), "lastname": nil},
			Company: map[string]*string{"companyname": str("Analytical Engines")},
		},
		To: "+14155552671",
		Custom: &channels.CustomContent{Properties: []byte(
			`{"template":"promo","text":"Hi {contactfield=firstname} from {contactfield=companyname}","count":3,"ratio":1.50,
			  "vars":[{"name":"{contactfield=lastname|friend}"},true,null],"{contactfield=firstname}":"key kept"}`)},
	}
}

func newSender(t testing.TB, cfg Config, client *http.Client) *Sender {
	t.Helper()
	s, err := New(cfg, client, nil)
	require.NoError(t, err)
	return s
}

func TestSendRequest(t *testing.T) {
	t.Cleanup(gock.Off)
	client := channelstest.NewClient(t, 5*time.Second)
	gock.InterceptClient(client)
	t.Cleanup(func() { gock.RestoreClient(client) })

	fixed := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	var body []byte
	var header http.Header
	gock.New("https://hooks.example.com").
		Post("/mautic/whatsapp").
		MatchParam("token", "abc").
		MatchHeader("Content-Type", "^application/json$").
		MatchHeader(DeliveryHeader, "^dispatch-11-whatsapp$").
		MatchHeader(TimestampHeader, "^"+strconv.FormatInt(fixed.Unix(), 10)+"$").
		AddMatcher(func(req *http.Request, _ *gock.Request) (bool, error) {
			b, err := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(b))
			body, header = b, req.Header.Clone()
			return err == nil, err
		}).
		Reply(202).
		JSON(map[string]any{"id": "wamid.123"})

	s := newSender(t, Config{Channel: "whatsapp", URL: "https://hooks.example.com/mautic/whatsapp?token=abc", Secret: testSecret}, client)
	s.now = func() time.Time { return fixed }
	rcpt, err := s.Send(context.Background(), testMessage())
	require.NoError(t, err)
	require.True(t, gock.IsDone())
	require.Equal(t, "wamid.123", rcpt.ProviderID)
	require.Equal(t, fixed, rcpt.SentAt)

	require.NoError(t, Verify(testSecret, header.Get(TimestampHeader), body, header.Get(SignatureHeader), fixed.Add(time.Minute), 5*time.Minute))
	require.JSONEq(t, `{
		"channel":"whatsapp","channel_id":0,"message_id":3,"campaign_id":2,"event_id":41,
		"key":"dispatch-11-whatsapp",
		"contact":{"id":7,"fields":{"firstname":"Ada","email":"ada@example.com"}},
		"content":{"template":"promo","text":"Hi Ada from Analytical Engines","count":3,"ratio":1.50,
		           "vars":[{"name":"friend"},true,null],"{contactfield=firstname}":"key kept"},
		"sent_at":"2026-03-04T05:06:07Z"}`, string(body))
	require.Contains(t, string(body), `"ratio":1.50`, "numbers keep their text")
}

func TestSendWithoutSecretOrContent(t *testing.T) {
	var got http.Header
	var body map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	s := newSender(t, Config{Channel: "whatsapp", URL: srv.URL}, channelstest.NewClient(t, 5*time.Second))
	msg := testMessage()
	msg.Custom = nil
	msg.MessageID, msg.CampaignID, msg.EventID = 0, 0, 0
	rcpt, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, "dispatch-11-whatsapp", rcpt.ProviderID, "the key when the answer has no id")
	require.Empty(t, got.Get(SignatureHeader))
	require.NotEmpty(t, got.Get(TimestampHeader))
	require.Nil(t, body["content"])
	require.Nil(t, body["campaign_id"])
	require.Contains(t, body, "campaign_id")
}

func TestSendStatusTable(t *testing.T) {
	cases := []channelstest.StatusCase{
		{Name: "200", Status: 200, Body: `ok`, Want: channelstest.OK, ProviderID: "dispatch-11-whatsapp"},
		{Name: "201 with id", Status: 201, Body: `{"id":"r-1"}`, Want: channelstest.OK, ProviderID: "r-1"},
		{Name: "204", Status: 204, Want: channelstest.OK},
		{Name: "302 not followed", Status: 302, Header: http.Header{"Location": {"/elsewhere"}}, Want: channelstest.Permanent, ErrContains: "redirects are not followed"},
		{Name: "400", Status: 400, Body: `{"error":"bad template"}`, Want: channelstest.Permanent, ErrContains: "bad template"},
		{Name: "401", Status: 401, Want: channelstest.Permanent},
		{Name: "403", Status: 403, Want: channelstest.Permanent},
		{Name: "404", Status: 404, Want: channelstest.Permanent},
		{Name: "408", Status: 408, Want: channelstest.Transient},
		{Name: "410 gone", Status: 410, Body: `number deleted`, Want: channelstest.Unreachable},
		{Name: "422", Status: 422, Want: channelstest.Permanent},
		{Name: "429", Status: 429, Header: http.Header{"Retry-After": {"4"}}, Want: channelstest.Transient, RetryAfter: 4 * time.Second},
		{Name: "500", Status: 500, Want: channelstest.Transient},
		{Name: "503 date", Status: 503, Header: http.Header{"Retry-After": {time.Now().Add(45 * time.Second).UTC().Format(http.TimeFormat)}}, Want: channelstest.Transient, RetryAfter: 45 * time.Second},
	}
	channelstest.RunStatusTable(t, func(t testing.TB, base string, c *http.Client) channels.Sender {
		return newSender(t, Config{Channel: "whatsapp", URL: base + "/hook", Secret: testSecret}, c)
	}, testMessage(), cases)
}

func TestSendBadContentWithoutCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	s := newSender(t, Config{Channel: "whatsapp", URL: srv.URL}, channelstest.NewClient(t, 5*time.Second))
	for _, props := range []string{`{"a":`, `not json`, `{"a":1} {"b":2}`} {
		t.Run(props, func(t *testing.T) {
			msg := testMessage()
			msg.Custom = &channels.CustomContent{Properties: []byte(props)}
			_, err := s.Send(context.Background(), msg)
			require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err), "err: %v", err)
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
		{"connection reset", channelstest.Reset, 5 * time.Second, "webhook whatsapp request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			s := newSender(t, Config{Channel: "whatsapp", URL: srv.URL + "/hook?token=tok-SECRET-in-url"}, channelstest.NewClient(t, tc.timeout))
			_, err := s.Send(context.Background(), testMessage())
			require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err), "err: %v", err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), srv.URL)
			require.NotContains(t, err.Error(), "tok-SECRET-in-url")
		})
	}
}

func TestNoSecretLeak(t *testing.T) {
	const urlToken = "url-token-SECRET-77"
	const urlPass = "url-pass-SECRET-88"
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, "sig=%s auth=%s url=%s secret=%s %s", r.Header.Get(SignatureHeader), r.Header.Get("Authorization"), r.URL.String(), testSecret, urlPass)
		}
	}
	handlers := map[string]http.HandlerFunc{
		"400 echo": echo(400), "401 echo": echo(401), "410 echo": echo(410), "500 echo": echo(500),
		"timeout": channelstest.Hang, "reset": channelstest.Reset,
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			u := "http://hook:" + urlPass + "@" + srv.Listener.Addr().String() + "/h?token=" + urlToken
			s, err := New(Config{Channel: "whatsapp", URL: u, Secret: testSecret}, channelstest.NewClient(t, 200*time.Millisecond), log)
			require.NoError(t, err)
			_, err = s.Send(context.Background(), testMessage())
			channelstest.AssertNoSecret(t, err, testSecret, urlToken, urlPass)
		})
	}
	channelstest.AssertNoSecretIn(t, "log", logs.String(), testSecret, urlToken, urlPass)
	cfg := Config{Channel: "whatsapp", URL: "https://u:" + urlPass + "@h.example/x?token=" + urlToken, Secret: testSecret}
	channelstest.AssertNoSecretIn(t, "String()", fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), testSecret, urlToken, urlPass)
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "cfg", cfg)
	channelstest.AssertNoSecretIn(t, "slog", js.String(), testSecret, urlToken, urlPass)
	bad := cfg
	bad.Channel = "email"
	_, err := New(bad, nil, nil)
	channelstest.AssertNoSecret(t, err, testSecret, urlToken, urlPass)
	_, err = ConfigsFromEnv([]string{"CHANNEL_X_WEBHOOK_URL=ftp://u:" + urlPass + "@h/?token=" + urlToken, "CHANNEL_X_WEBHOOK_SECRET=" + testSecret})
	channelstest.AssertNoSecret(t, err, testSecret, urlToken, urlPass)
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"channel":"whatsapp"}`)
	sig := Sign(testSecret, ts, body)
	tests := []struct {
		name      string
		secret    string
		timestamp string
		body      []byte
		signature string
		now       time.Time
		tolerance time.Duration
		want      error
		wantText  string
	}{
		{name: "valid", secret: testSecret, timestamp: ts, body: body, signature: sig, now: now, tolerance: 5 * time.Minute},
		{name: "valid late within tolerance", secret: testSecret, timestamp: ts, body: body, signature: sig, now: now.Add(4 * time.Minute), tolerance: 5 * time.Minute},
		{name: "no time check", secret: testSecret, timestamp: ts, body: body, signature: sig, now: now.Add(48 * time.Hour)},
		{name: "wrong secret", secret: "other", timestamp: ts, body: body, signature: sig, now: now, tolerance: time.Minute, want: ErrBadSignature},
		{name: "tampered body", secret: testSecret, timestamp: ts, body: []byte(`{"channel":"sms"}`), signature: sig, now: now, tolerance: time.Minute, want: ErrBadSignature},
		{name: "tampered timestamp", secret: testSecret, timestamp: strconv.FormatInt(now.Unix()+1, 10), body: body, signature: sig, now: now, tolerance: time.Minute, want: ErrBadSignature},
		{name: "stale", secret: testSecret, timestamp: ts, body: body, signature: sig, now: now.Add(10 * time.Minute), tolerance: 5 * time.Minute, want: ErrStale},
		{name: "from the future", secret: testSecret, timestamp: ts, body: body, signature: sig, now: now.Add(-10 * time.Minute), tolerance: 5 * time.Minute, want: ErrStale},
		{name: "no prefix", secret: testSecret, timestamp: ts, body: body, signature: sig[len("sha256="):], now: now, want: ErrBadSignature},
		{name: "not hex", secret: testSecret, timestamp: ts, body: body, signature: "sha256=zz", now: now, want: ErrBadSignature},
		{name: "bad timestamp", secret: testSecret, timestamp: "yesterday", body: body, signature: sig, now: now, want: ErrBadSignature},
		{name: "empty secret", secret: "", timestamp: ts, body: body, signature: sig, now: now, wantText: "empty secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.timestamp, tc.body, tc.signature, tc.now, tc.tolerance)
			switch {
			case tc.wantText != "":
				require.ErrorContains(t, err, tc.wantText)
			case tc.want != nil:
				require.ErrorIs(t, err, tc.want)
			default:
				require.NoError(t, err)
			}
		})
	}
	require.Regexp(t, `^sha256=[0-9a-f]{64}$`, sig)
}

func TestConfigsFromEnv(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("from-file\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))

	tests := []struct {
		name    string
		env     []string
		want    map[channels.Name]Config
		wantErr []string
	}{
		{
			name: "none",
			env:  []string{"PATH=/bin", "CHANNEL_X=1", "TWILIO_FROM=+1"},
			want: map[channels.Name]Config{},
		},
		{
			name: "several channels",
			env: []string{
				"CHANNEL_WHATSAPP_WEBHOOK_URL=https://hooks.example/wa",
				"CHANNEL_WHATSAPP_WEBHOOK_SECRET=s1",
				"CHANNEL_MY_APP_WEBHOOK_URL=http://127.0.0.1:9000/in",
				"CHANNEL_Line_WEBHOOK_URL=https://line.example/",
				"CHANNEL_LINE_WEBHOOK_SECRET_FILE=" + secretFile,
				"CHANNEL_EMPTY_WEBHOOK_URL=",
			},
			want: map[channels.Name]Config{
				"whatsapp": {Channel: "whatsapp", URL: "https://hooks.example/wa", Secret: "s1"},
				"my_app":   {Channel: "my_app", URL: "http://127.0.0.1:9000/in"},
				"line":     {Channel: "line", URL: "https://line.example/", Secret: "from-file"},
			},
		},
		{
			name:    "secret without url",
			env:     []string{"CHANNEL_SIGNAL_WEBHOOK_SECRET=s"},
			wantErr: []string{`channel "signal": a webhook secret is set but CHANNEL_SIGNAL_WEBHOOK_URL is not`},
		},
		{
			name:    "secret with empty url",
			env:     []string{"CHANNEL_SIGNAL_WEBHOOK_URL=", "CHANNEL_SIGNAL_WEBHOOK_SECRET=s"},
			wantErr: []string{"secret is set but"},
		},
		{
			name: "all problems at once",
			env: []string{
				"CHANNEL_BAD_WEBHOOK_URL=ftp://x",
				"CHANNEL_REL_WEBHOOK_URL=/path",
				"CHANNEL_SMS_WEBHOOK_URL=https://x.example",
				"CHANNEL_WE-IRD_WEBHOOK_URL=https://x.example",
				"CHANNEL__WEBHOOK_URL=https://x.example",
				"CHANNEL_BOTH_WEBHOOK_URL=https://x.example",
				"CHANNEL_BOTH_WEBHOOK_SECRET=a",
				"CHANNEL_BOTH_WEBHOOK_SECRET_FILE=" + secretFile,
				"CHANNEL_NOFILE_WEBHOOK_URL=https://x.example",
				"CHANNEL_NOFILE_WEBHOOK_SECRET_FILE=" + filepath.Join(dir, "missing"),
				"CHANNEL_EMPTYFILE_WEBHOOK_URL=https://x.example",
				"CHANNEL_EMPTYFILE_WEBHOOK_SECRET_FILE=" + empty,
				"CHANNEL_DUP_WEBHOOK_URL=https://a.example",
				"CHANNEL_dup_WEBHOOK_URL=https://b.example",
			},
			wantErr: []string{
				"webhook config bad: url: scheme must be http or https",
				"webhook config rel: url: scheme must be http or https",
				`channel "sms" has its own sender`,
				`channel key "WE-IRD"`,
				`channel key ""`,
				`channel "both": both a webhook secret and a secret file`,
				`channel "nofile": read webhook secret file`,
				`channel "emptyfile": webhook secret file is empty`,
				`channel "dup" has more than one url variable`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConfigsFromEnv(tc.env)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					require.ErrorContains(t, err, w)
				}
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{Channel: "whatsapp", URL: "https://x.example/h"}, ""},
		{"built in", Config{Channel: "tweet", URL: "https://x.example/h"}, "own sender"},
		{"upper case", Config{Channel: "WhatsApp", URL: "https://x.example/h"}, "lower-case"},
		{"no url", Config{Channel: "whatsapp"}, "url is required"},
		{"no host", Config{Channel: "whatsapp", URL: "https:///h"}, "host is missing"},
		{"secret newline", Config{Channel: "whatsapp", URL: "https://x.example", Secret: "a\nb"}, "line breaks"},
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
	_, err := New(Config{Channel: "whatsapp", URL: "https://x.example"}, nil, nil)
	require.ErrorContains(t, err, "nil http client")
	require.False(t, errors.Is(err, channels.ErrPermanent))
}

func TestErrorLogLevel(t *testing.T) {
	tests := []struct {
		status    int
		wantError bool
	}{{401, true}, {403, true}, {400, false}, {410, false}, {503, false}}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			t.Cleanup(srv.Close)
			var logs bytes.Buffer
			s, err := New(Config{Channel: "whatsapp", URL: srv.URL}, channelstest.NewClient(t, 5*time.Second), slog.New(slog.NewJSONHandler(&logs, nil)))
			require.NoError(t, err)
			_, err = s.Send(context.Background(), testMessage())
			require.Error(t, err)
			require.Equal(t, tc.wantError, bytes.Contains(logs.Bytes(), []byte(`"level":"ERROR"`)), logs.String())
		})
	}
}
