package sms

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestValidSignature(t *testing.T) {
	// The example of Twilio's "Webhooks security" page.
	const token = "12345"
	const page = "https://mycompany.com/myapp.php?foo=1&bar=2"
	form := url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+12349013030"},
		"Digits":  {"1234"},
		"From":    {"+12349013030"},
		"To":      {"+18005551212"},
	}
	const documented = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

	tests := []struct {
		name      string
		token     string
		url       string
		form      url.Values
		signature string
		want      bool
	}{
		{"documented example", token, page, form, documented, true},
		{"explicit default port", token, "https://mycompany.com:443/myapp.php?foo=1&bar=2", form, documented, true},
		{"wrong token", "54321", page, form, documented, false},
		{"other url", token, "https://mycompany.com/other.php?foo=1&bar=2", form, documented, false},
		{"tampered form", token, page, url.Values{"CallSid": {"CA1234567890ABCDE"}, "Digits": {"9999"}}, documented, false},
		{"empty signature", token, page, form, "", false},
		{"not base64", token, page, form, "%%%", false},
		{"empty token", "", page, form, documented, false},
		{"own signature round trip", "tok", "http://127.0.0.1:8080/v1/callbacks/twilio?stat=abc",
			url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}},
			Sign("tok", "http://127.0.0.1:8080/v1/callbacks/twilio?stat=abc", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ValidSignature(tc.token, tc.url, tc.form, tc.signature))
		})
	}
}

func TestStatusCallback(t *testing.T) {
	tests := []struct {
		name       string
		form       url.Values
		failed     bool
		delivered  bool
		optOut     bool
		kind       channels.Kind
		isFailure  bool
		wantStat   string
		wantStatus string
	}{
		{
			name:      "delivered",
			form:      url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "stat": {"h1"}},
			delivered: true, wantStat: "h1", wantStatus: "delivered",
		},
		{
			name:   "undelivered unknown handset",
			form:   url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30005"}},
			failed: true, kind: channels.KindUnreachable, isFailure: true, wantStatus: "undelivered",
		},
		{
			name:   "failed opted out",
			form:   url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"Failed"}, "ErrorCode": {"21610"}},
			failed: true, optOut: true, kind: channels.KindOptedOut, isFailure: true, wantStatus: "failed",
		},
		{
			name:   "failed carrier filter",
			form:   url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}, "ErrorCode": {"30007"}},
			failed: true, kind: channels.KindPermanent, isFailure: true, wantStatus: "failed",
		},
		{
			name:   "inbound stop",
			form:   url.Values{"MessageSid": {"SM2"}, "SmsStatus": {"received"}, "Body": {"  stop \n"}, "From": {"+14155552671"}},
			optOut: true,
		},
		{
			name: "inbound other text",
			form: url.Values{"MessageSid": {"SM2"}, "Body": {"stop sending me cats"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ParseStatusCallback(tc.form)
			require.Equal(t, tc.failed, c.Failed())
			require.Equal(t, tc.delivered, c.Delivered())
			require.Equal(t, tc.optOut, c.OptOut())
			kind, ok := c.FailureKind()
			require.Equal(t, tc.isFailure, ok)
			if ok {
				require.Equal(t, tc.kind, kind)
			}
			require.Equal(t, tc.wantStat, c.Stat)
			require.Equal(t, tc.wantStatus, c.MessageStatus)
		})
	}
}

func TestIsOptOutKeyword(t *testing.T) {
	for _, body := range []string{"STOP", "stop", " StopAll ", "unsubscribe", "Cancel", "END", "quit.", "optout", "REVOKE!"} {
		require.True(t, IsOptOutKeyword(body), body)
	}
	for _, body := range []string{"", "start", "please stop", "STOP IT", "yes"} {
		require.False(t, IsOptOutKeyword(body), body)
	}
}
