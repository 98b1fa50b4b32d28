package bridge

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
)

// TestTokenComparison: only the exact token opens /v1/*, wherever it is
// given. Both sides are hashed (SHA-256) before subtle.ConstantTimeCompare,
// so the comparison takes the same time whatever the presented token's
// length or how much of it matches: wrong tokens of the same length, of
// another length, a prefix, the token plus a suffix are all refused alike.
func TestTokenComparison(t *testing.T) {
	const tok = "0123456789abcdef-the-sidecar-token"
	a := &App{cfg: Config{Token: tok}}
	want := sha256.Sum256([]byte(tok))
	cases := []struct {
		name   string
		header map[string]string
		cookie string
		ok     bool
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + tok}, "", true},
		{"bearer, scheme in lower case", map[string]string{"Authorization": "bearer " + tok}, "", true},
		{"X-Sidecar-Token", map[string]string{"X-Sidecar-Token": tok}, "", true},
		{"session cookie", nil, tok, true},
		{"wrong, same length", map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(tok))}, "", false},
		{"wrong, last byte differs", map[string]string{"Authorization": "Bearer " + tok[:len(tok)-1] + "X"}, "", false},
		{"wrong, shorter (a prefix)", map[string]string{"Authorization": "Bearer " + tok[:8]}, "", false},
		{"wrong, longer (token + suffix)", map[string]string{"Authorization": "Bearer " + tok + "x"}, "", false},
		{"wrong, very long", map[string]string{"Authorization": "Bearer " + strings.Repeat(tok, 1000)}, "", false},
		{"wrong, other case", map[string]string{"Authorization": "Bearer " + strings.ToUpper(tok)}, "", false},
		{"token with a NUL appended", map[string]string{"X-Sidecar-Token": tok + "\x00"}, "", false},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, "", false},
		{"basic scheme", map[string]string{"Authorization": "Basic " + tok}, "", false},
		{"scheme only", map[string]string{"Authorization": tok}, "", false},
		{"nothing", nil, "", false},
		{"a wrong Authorization is not rescued by a right X-Sidecar-Token", map[string]string{"Authorization": "Bearer nope", "X-Sidecar-Token": tok}, "", false},
		{"a wrong Authorization is not rescued by a right cookie", map[string]string{"Authorization": "Bearer nope"}, tok, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/dispatches/1", nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: tc.cookie})
			}
			require.Equal(t, tc.ok, a.tokenOK(r, want))
		})
	}
	t.Run("no token configured refuses everything, the empty token included", func(t *testing.T) {
		none := &App{cfg: Config{}}
		empty := sha256.Sum256(nil)
		for _, h := range []string{"Bearer ", "Bearer x", ""} {
			r := httptest.NewRequest(http.MethodGet, "/v1/dispatches/1", nil)
			r.Header.Set("Authorization", h)
			require.False(t, none.tokenOK(r, empty))
		}
	})
}

// TestTwilioCallbackRefusesForgeries: the status callback changes nothing
// unless X-Twilio-Signature is Twilio's HMAC of exactly this URL and form
// with the auth token: missing, wrong-key, other-URL signatures and a
// captured request replayed with a tampered body are refused with 403 and
// write nothing; a replay of the genuine request changes nothing more.
func TestTwilioCallbackRefusesForgeries(t *testing.T) {
	h := newHarness(t)
	c := h.content()
	id := h.contact(seed.Contact{Mobile: "+14155550100"})
	require.NoError(t, h.db.Mautic.InsertSMSStats(h.ctx, h.db.Mautic, []mautic.SMSStat{{SMSID: c.sms, ContactID: id, DateSent: time.Now(), TrackingHash: "stat1"}}))
	const authToken = "twilio-auth-token" // the harness's
	target := h.srv.URL + "/v1/callbacks/twilio?stat=stat1"
	genuine := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+14155550100"}}

	send := func(u string, form url.Values, sig string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	failed := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30005"}, "To": {"+14155550100"}}
	withExtra := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+14155550100"}, "ErrorCode": {"30003"}}
	sig := sms.Sign(authToken, target, genuine)
	forgeries := []struct {
		name string
		url  string
		form url.Values
		sig  string
	}{
		{"no signature", target, failed, ""},
		{"not base64", target, failed, "%%%"},
		{"signed with another auth token", target, failed, sms.Sign("not-the-token", target, failed)},
		{"signed for another stat (query)", h.srv.URL + "/v1/callbacks/twilio?stat=other", failed, sms.Sign(authToken, target, failed)},
		{"signed for another host", target, failed, sms.Sign(authToken, "https://evil.example/v1/callbacks/twilio?stat=stat1", failed)},
		{"genuine signature, status tampered", target, failed, sig},
		{"genuine signature, a parameter added", target, withExtra, sig},
		{"genuine signature, a parameter removed", target, url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}, sig},
		{"genuine signature, an opt-out body injected", target, url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"},
			"To": {"+14155550100"}, "From": {"+14155550100"}, "Body": {"STOP"}}, sig},
	}
	for _, f := range forgeries {
		require.Equalf(t, http.StatusForbidden, send(f.url, f.form, f.sig), "%s", f.name)
	}
	require.Zero(t, h.db.Count(t, "sms_message_stats", "is_failed = 1"), "no forgery marked the SMS failed")
	require.Zero(t, h.db.Count(t, "lead_donotcontact", ""), "no forgery added a DNC entry")

	sigFailed := sms.Sign(authToken, target, failed)
	require.Equal(t, http.StatusOK, send(target, failed, sigFailed), "the genuine callback")
	require.Equal(t, http.StatusOK, send(target, failed, sigFailed), "the same callback replayed")
	require.Equal(t, 1, h.db.Count(t, "sms_message_stats", "tracking_hash = 'stat1' AND is_failed = 1"))
	require.Equal(t, 1, h.db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'sms'", id), "a replay adds nothing")
}

// TestTwilioCallbackBehindAProxy: with SIDECAR_PUBLIC_URL set the signature
// must cover the public URL; one over the address the request reached
// (which a client controls through Host) is refused.
func TestTwilioCallbackBehindAProxy(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublicURL = "https://sidecar.example.test" })
	form := url.Values{"MessageSid": {"SM9"}, "MessageStatus": {"delivered"}}
	post := func(signedURL string) int {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/callbacks/twilio", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sms.Sign("twilio-auth-token", signedURL, form))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusForbidden, post(h.srv.URL+"/v1/callbacks/twilio"))
	require.Equal(t, http.StatusOK, post("https://sidecar.example.test/v1/callbacks/twilio"))
}
