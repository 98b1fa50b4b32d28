package sms

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h2non/gock"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "twilio-auth-token-SECRET-7f3a"
)

func str(s string) *string { return &s }

func testMessage() channels.Message {
	return channels.Message{
		Key:          "dispatch-1-sms",
		Channel:      channels.SMS,
		ChannelID:    5,
		Contact:      channels.Contact{ID: 7, Fields: map[string]*string{"firstname": str("Ada"), "lastname": nil}},
		To:           "(415) 555-2671",
		TrackingHash: "65f1c0ffee",
		SMS:          &channels.SMSContent{ID: 5, Message: "Hi {contactfield=firstname}{contactfield=lastname|!}"},
	}
}

func testConfig(base string) Config {
	return Config{AccountSID: testSID, AuthToken: testToken, MessagingServiceSID: "MG0001", BaseURL: base}
}

func newSender(t testing.TB, cfg Config, client *http.Client, log *slog.Logger) *Sender {
	t.Helper()
	s, err := New(cfg, client, log)
	require.NoError(t, err)
	return s
}

// captureForm records the request's form body for later assertions and
// puts the body back for gock's other matchers.
func captureForm(dst *url.Values) gock.MatchFunc {
	return func(req *http.Request, _ *gock.Request) (bool, error) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return false, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		*dst, err = url.ParseQuery(string(b))
		return err == nil, err
	}
}

func TestSendRequest(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(Config) Config
		wantForm url.Values
	}{
		{
			name: "messaging service and status callback",
			cfg: func(c Config) Config {
				c.StatusCallbackURL = "https://sidecar.example/v1/callbacks/twilio"
				return c
			},
			wantForm: url.Values{
				"To":                  {"+14155552671"},
				"Body":                {"Hi Ada!"},
				"MessagingServiceSid": {"MG0001"},
				"StatusCallback":      {"https://sidecar.example/v1/callbacks/twilio?stat=65f1c0ffee"},
			},
		},
		{
			name: "from number without callback",
			cfg: func(c Config) Config {
				c.MessagingServiceSID = ""
				c.From = "+15005550006"
				return c
			},
			wantForm: url.Values{"To": {"+14155552671"}, "Body": {"Hi Ada!"}, "From": {"+15005550006"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(gock.Off)
			client := channelstest.NewClient(t, 5*time.Second)
			gock.InterceptClient(client)
			t.Cleanup(func() { gock.RestoreClient(client) })

			var form url.Values
			basic := base64.StdEncoding.EncodeToString([]byte(testSID + ":" + testToken))
			gock.New("https://api.twilio.com").
				Post("/2010-04-01/Accounts/"+testSID+"/Messages.json").
				MatchHeader("Authorization", "^"+regexp.QuoteMeta("Basic "+basic)+"$").
				MatchHeader("Content-Type", "^application/x-www-form-urlencoded$").
				AddMatcher(captureForm(&form)).
				Reply(201).
				JSON(map[string]any{"sid": "SM0123", "status": "queued"})

			s := newSender(t, tc.cfg(testConfig("")), client, nil)
			rcpt, err := s.Send(context.Background(), testMessage())
			require.NoError(t, err)
			require.Equal(t, "SM0123", rcpt.ProviderID)
			require.False(t, rcpt.SentAt.IsZero())
			require.Equal(t, tc.wantForm, form)
			require.True(t, gock.IsDone())
		})
	}
}

func TestSendStatusTable(t *testing.T) {
	future := time.Now().Add(120 * time.Second).UTC().Format(http.TimeFormat)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	twErr := func(status, code int, msg string) string {
		return fmt.Sprintf(`{"code":%d,"message":%q,"more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`, code, msg, code, status)
	}
	cases := []channelstest.StatusCase{
		{Name: "201 created", Status: 201, Header: jsonHeader, Body: `{"sid":"SMabc","status":"queued"}`, Want: channelstest.OK, ProviderID: "SMabc"},
		{Name: "201 garbage", Status: 201, Body: `<html>ok</html>`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "201 truncated json", Status: 201, Body: `{"sid":"SMa`, Want: channelstest.Transient, ErrContains: "not json"},
		{Name: "201 without sid", Status: 201, Body: `{"status":"queued"}`, Want: channelstest.Transient, ErrContains: "no message sid"},
		{Name: "21211 invalid to", Status: 400, Body: twErr(400, 21211, "The 'To' number +14155552671 is not a valid phone number."), Want: channelstest.Unreachable, ErrContains: "code 21211"},
		{Name: "21614 not mobile", Status: 400, Body: twErr(400, 21614, "'To' number is not a valid mobile number"), Want: channelstest.Unreachable},
		{Name: "21217 not valid", Status: 400, Body: twErr(400, 21217, "Phone number does not appear to be valid"), Want: channelstest.Unreachable},
		{Name: "21407 no sms", Status: 400, Body: twErr(400, 21407, "This Phone Number type does not support SMS or MMS"), Want: channelstest.Unreachable},
		{Name: "21610 unsubscribed", Status: 400, Body: twErr(400, 21610, "Attempt to send to unsubscribed recipient"), Want: channelstest.OptedOut, ErrContains: "21610"},
		{Name: "21408 region not enabled", Status: 400, Body: twErr(400, 21408, "Permission to send an SMS has not been enabled"), Want: channelstest.Permanent},
		{Name: "21602 body required", Status: 400, Body: twErr(400, 21602, "Message body is required."), Want: channelstest.Permanent},
		{Name: "400 not json", Status: 400, Body: `Bad Request`, Want: channelstest.Permanent, ErrContains: "not json"},
		{Name: "401 auth", Status: 401, Body: twErr(401, 20003, "Authenticate"), Want: channelstest.Permanent, ErrContains: "20003"},
		{Name: "403 forbidden", Status: 403, Body: twErr(403, 20003, "Permission denied"), Want: channelstest.Permanent},
		{Name: "404 unknown account", Status: 404, Body: twErr(404, 20404, "The requested resource was not found"), Want: channelstest.Permanent},
		{Name: "429 seconds", Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: twErr(429, 20429, "Too Many Requests"), Want: channelstest.Transient, RetryAfter: 7 * time.Second},
		{Name: "429 http date", Status: 429, Header: http.Header{"Retry-After": {future}}, Body: twErr(429, 20429, "Too Many Requests"), Want: channelstest.Transient, RetryAfter: 120 * time.Second},
		{Name: "429 no header", Status: 429, Body: twErr(429, 20429, "Too Many Requests"), Want: channelstest.Transient},
		{Name: "500", Status: 500, Body: twErr(500, 20500, "Internal Server Error"), Want: channelstest.Transient},
		{Name: "503 html with retry", Status: 503, Header: http.Header{"Retry-After": {"30"}}, Body: `<html>down</html>`, Want: channelstest.Transient, RetryAfter: 30 * time.Second, ErrContains: "not json"},
		{Name: "502 truncated", Status: 502, Body: `{"code":205`, Want: channelstest.Transient},
		{Name: "301 unexpected", Status: 304, Want: channelstest.Permanent},
	}
	channelstest.RunStatusTable(t, func(t testing.TB, base string, c *http.Client) channels.Sender {
		return newSender(t, testConfig(base), c, nil)
	}, testMessage(), cases)
}

func TestSendWithoutCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(201)
		_, _ = io.WriteString(w, `{"sid":"SM1"}`)
	}))
	t.Cleanup(srv.Close)
	s := newSender(t, testConfig(srv.URL), channelstest.NewClient(t, 5*time.Second), nil)

	tests := []struct {
		name string
		edit func(*channels.Message)
		want channelstest.Outcome
	}{
		{"empty number", func(m *channels.Message) { m.To = "  " }, channelstest.Unreachable},
		{"letters", func(m *channels.Message) { m.To = "call me" }, channelstest.Unreachable},
		{"too short", func(m *channels.Message) { m.To = "12" }, channelstest.Unreachable},
		{"invalid for region", func(m *channels.Message) { m.To = "+1 555 0100" }, channelstest.Unreachable},
		{"national number of another region", func(m *channels.Message) { m.To = "07911 123456" }, channelstest.Unreachable},
		{"no sms content", func(m *channels.Message) { m.SMS = nil }, channelstest.Permanent},
		{"empty body", func(m *channels.Message) { m.SMS.Message = "{contactfield=lastname}" }, channelstest.Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := testMessage()
			sms := *msg.SMS
			msg.SMS = &sms
			tc.edit(&msg)
			_, err := s.Send(context.Background(), msg)
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
		})
	}
	require.Zero(t, calls.Load(), "no request may reach Twilio")
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		raw, region, want string
	}{
		{"(415) 555-2671", "US", "+14155552671"},
		{"+44 7911 123456", "US", "+447911123456"},
		{"07911 123456", "GB", "+447911123456"},
		{"06 12 34 56 78", "FR", "+33612345678"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := Normalize(tc.raw, tc.region)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
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
		{"connection reset", channelstest.Reset, 5 * time.Second, "twilio request"},
		{"body cut short", channelstest.CutShort(201, "application/json", `{"sid":"SM`), 5 * time.Second, "cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			s := newSender(t, testConfig(srv.URL), channelstest.NewClient(t, tc.timeout), nil)
			_, err := s.Send(context.Background(), testMessage())
			require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err), "err: %v", err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), srv.URL, "the url stays out of the error")
		})
	}
}

func TestSendCancelledContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(channelstest.Hang))
	t.Cleanup(srv.Close)
	s := newSender(t, testConfig(srv.URL), channelstest.NewClient(t, 5*time.Second), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Send(ctx, testMessage())
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	require.ErrorIs(t, err, context.Canceled)
}

// TestNoSecretLeak makes sends fail in several ways, with a server that
// echoes the credentials it received, and checks that neither the errors,
// the logs nor the config's printed forms contain the auth token.
func TestNoSecretLeak(t *testing.T) {
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			user, pass, _ := r.BasicAuth()
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"code":20003,"message":"bad %s %s %s","status":%d}`, r.Header.Get("Authorization"), user, pass, status)
		}
	}
	handlers := map[string]http.HandlerFunc{
		"401 echo": echo(401),
		"403 echo": echo(403),
		"400 echo": echo(400),
		"500 echo": echo(500),
		"html echo": func(w http.ResponseWriter, r *http.Request) {
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
			cfg := testConfig(srv.URL)
			s := newSender(t, cfg, channelstest.NewClient(t, 200*time.Millisecond), log)
			_, err := s.Send(context.Background(), testMessage())
			channelstest.AssertNoSecret(t, err, testToken)
		})
	}
	cfg := testConfig("")
	channelstest.AssertNoSecretIn(t, "log", logs.String(), testToken)
	channelstest.AssertNoSecretIn(t, "String()", fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), testToken)
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "cfg", cfg)
	channelstest.AssertNoSecretIn(t, "slog", js.String(), testToken)
	_, err := New(Config{AuthToken: testToken}, nil, nil)
	channelstest.AssertNoSecret(t, err, testToken)
}

func TestAuthFailureLoggedAtError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"code":20003,"message":"Authenticate","status":401}`)
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	s := newSender(t, testConfig(srv.URL), channelstest.NewClient(t, 5*time.Second), slog.New(slog.NewJSONHandler(&logs, nil)))
	_, err := s.Send(context.Background(), testMessage())
	require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
	sc := bufio.NewScanner(&logs)
	var found bool
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"level":"ERROR"`) && strings.Contains(sc.Text(), `"status":401`) {
			found = true
		}
	}
	require.True(t, found, "logs: %s", logs.String())
}

func TestRedactsNumberFromProviderText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"code":21211,"message":"The 'To' number +14155552671 is not a valid phone number.","status":400}`)
	}))
	t.Cleanup(srv.Close)
	s := newSender(t, testConfig(srv.URL), channelstest.NewClient(t, 5*time.Second), nil)
	_, err := s.Send(context.Background(), testMessage())
	require.Equal(t, channelstest.Unreachable, channelstest.OutcomeOf(err))
	require.NotContains(t, err.Error(), "4155552671")
	require.Contains(t, err.Error(), "[to]")
	require.ErrorIs(t, err, channels.ErrUnreachable)
}

func TestConfigValidate(t *testing.T) {
	valid := Config{AccountSID: testSID, AuthToken: testToken, From: "+15005550006"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"valid with from", func(c *Config) {}, ""},
		{"valid with service", func(c *Config) { c.From = ""; c.MessagingServiceSID = "MG1" }, ""},
		{"valid full", func(c *Config) {
			c.BaseURL = "http://127.0.0.1:9999"
			c.DefaultRegion = "gb"
			c.StatusCallbackURL = "https://x.example/cb?a=1"
		}, ""},
		{"no sid", func(c *Config) { c.AccountSID = "" }, "account sid is required"},
		{"sid with slash", func(c *Config) { c.AccountSID = "AC1/../x" }, "not allowed in a url path"},
		{"no token", func(c *Config) { c.AuthToken = "" }, "auth token is required"},
		{"no sender", func(c *Config) { c.From = "" }, "messaging service sid or a from number"},
		{"bad base", func(c *Config) { c.BaseURL = "ftp://x" }, "base url"},
		{"base with credentials", func(c *Config) { c.BaseURL = "https://u:p@x" }, "credentials"},
		{"bad region", func(c *Config) { c.DefaultRegion = "XX" }, "default region"},
		{"bad callback", func(c *Config) { c.StatusCallbackURL = "/relative" }, "status callback url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestNewRejectsNilClient(t *testing.T) {
	_, err := New(Config{AccountSID: testSID, AuthToken: testToken, From: "+15005550006"}, nil, nil)
	require.ErrorContains(t, err, "nil http client")
}
