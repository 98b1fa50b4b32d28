package webhookclient

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWebhookConnSpeaksHTTP: the load client's requests are what Mautic
// sends (method, path, token, form) and its answers are read whole, over one
// kept-alive connection, whatever framing the server picks.
func TestWebhookConnSpeaksHTTP(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		switch {
		case err != nil || r.Method != http.MethodPost || r.URL.Path != "/base/v1/campaign/message" ||
			r.Header.Get("Authorization") != "Bearer s3cret" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
			http.Error(w, "bad request", http.StatusBadRequest)
		case form.Get("contact_id") == "404":
			http.Error(w, `{"error":"not_found"}`, http.StatusNotFound)
		case form.Get("contact_id") == "7":
			// No Content-Length: a chunked answer.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			io.WriteString(w, `{"dispatch_id":7,"status":"accepted"}`) //nolint:errcheck // test server
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(`{"status":"duplicate"}`)))
			io.WriteString(w, `{"status":"duplicate"}`) //nolint:errcheck // test server
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	target, err := NewTarget(srv.URL+"/base/", "s3cret")
	require.NoError(t, err)
	c := target.Conn()
	defer c.Close()
	ctx := context.Background()

	status, body, err := c.Post(ctx, "contact_id=7&message_id=1")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, `{"dispatch_id":7,"status":"accepted"}`, string(body))

	status, body, err = c.Post(ctx, "contact_id=404&message_id=1")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), "not_found")

	status, body, err = c.Post(ctx, "contact_id=8&message_id=1")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, `{"status":"duplicate"}`, string(body))
	require.Equal(t, int32(1), conns.Load(), "the three calls share one connection")

	// The server drops idle connections: the next call dials again.
	srv.CloseClientConnections()
	status, _, err = c.Post(ctx, "contact_id=9&message_id=1")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, int32(2), conns.Load())
}

func TestWebhookTargetRejectsOtherSchemes(t *testing.T) {
	for _, u := range []string{"https://127.0.0.1:1", "127.0.0.1:8080", "http://"} {
		_, err := NewTarget(u, "t")
		require.Error(t, err, u)
	}
}

// TestWebhookConnReportsARefusedDial: a server that is gone is a transport
// error, not a hang.
func TestWebhookConnReportsARefusedDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	target, err := NewTarget("http://"+addr, "t")
	require.NoError(t, err)
	_, _, err = target.Conn().Post(context.Background(), "contact_id=1")
	require.Error(t, err)
}

// TestWebhookConnStopsWithItsContext: a call waiting on a server that does
// not answer ends when its context is cancelled.
func TestWebhookConnStopsWithItsContext(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	}))
	defer srv.Close()
	defer close(release)
	target, err := NewTarget(srv.URL, "t")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := target.Conn().Post(ctx, "contact_id=1")
		errc <- err
	}()
	<-arrived // the call is waiting for its answer
	cancel()
	require.Error(t, <-errc)
}
