package channels_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Fri, 27 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Fri, 27 Nov 2026 11:59:00 GMT": 0, // in the past
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		require.Equal(t, want, channels.RetryAfter(h, now), "Retry-After %q", v)
	}
}

func TestCheckHTTPURL(t *testing.T) {
	require.NoError(t, channels.CheckHTTPURL("https://api.twilio.com", false))
	require.NoError(t, channels.CheckHTTPURL("http://127.0.0.1:8080/x", false))
	require.NoError(t, channels.CheckHTTPURL("https://u:p@hooks.example.com/in", true), "a webhook receiver may take basic auth")
	require.ErrorContains(t, channels.CheckHTTPURL("https://u:p@api.example.com", false), "credentials")
	require.ErrorContains(t, channels.CheckHTTPURL("ftp://x", false), "scheme")
	require.ErrorContains(t, channels.CheckHTTPURL("https://", false), "host")
	require.ErrorContains(t, channels.CheckHTTPURL("http://[::1", false), "not a url")
}

func TestTransportErrorHidesTheURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 20 * time.Millisecond}
	_, err := client.Get(srv.URL + "/secret-path?token=s3cret")
	require.Error(t, err)
	got := channels.TransportError(context.Background(), "twilio", err)
	require.Equal(t, channels.KindTransient, channels.KindOf(got))
	require.Contains(t, got.Error(), "twilio request timed out")
	require.NotContains(t, got.Error(), "s3cret")
	require.NotContains(t, got.Error(), "secret-path")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got = channels.TransportError(ctx, "x", err)
	require.Equal(t, "x request: context canceled", got.Error())
}

func TestMaskSecret(t *testing.T) {
	require.Equal(t, `""`, channels.MaskSecret(""))
	require.Equal(t, "[redacted]", channels.MaskSecret("hunter2"))
}
