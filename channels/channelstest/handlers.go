package channelstest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Hang is an HTTP handler that never answers: it reads the request body
// (so the server notices when the client goes away) and returns once the
// client gave up, or after a minute as a safety net. Use it with a client
// whose timeout is short to test timeouts.
func Hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
}

// Reset is an HTTP handler that resets the connection without answering.
func Reset(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST instead of FIN
	}
	_ = conn.Close()
}

// CutShort returns an HTTP handler that answers status with a
// Content-Length larger than the body it writes (partial), then closes the
// connection: the client sees a truncated body.
func CutShort(status int, contentType, partial string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
			status, http.StatusText(status), contentType, len(partial)+100, partial)
		_ = buf.Flush()
	}
}
