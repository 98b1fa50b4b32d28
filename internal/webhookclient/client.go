// Package webhookclient calls the sidecar's campaign webhook the way a load
// test needs: each client owns one keep-alive connection and writes its
// requests itself. net/http's client spends about as much CPU per request as
// the sidecar does (a reader and a writer goroutine per connection, channel
// hand-offs, header maps), and on a 2-core machine that CPU is taken from
// the sidecar and MariaDB being measured. The answers are still read by
// net/http's parser (http.ReadResponse), so framing, chunking and
// "Connection: close" are handled as any client would.
package webhookclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Target is the sidecar's campaign webhook: POSTs of form bodies with the
// bearer token, as Mautic's "Send a webhook" action sends them.
type Target struct {
	addr string // host:port
	head []byte // the request line and headers up to Content-Length's value
}

// NewTarget prepares POSTs of forms to base's /v1/campaign/message; base
// is the sidecar's http:// URL.
func NewTarget(base, token string) (*Target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("webhook URL: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want http://host:port", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.EscapedPath()
	for len(path) > 0 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	head := "POST " + path + "/v1/campaign/message HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: loadgen\r\nAuthorization: Bearer " + token +
		"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
	return &Target{addr: addr, head: []byte(head)}, nil
}

// Conn returns a client that dials on first use. A Conn is used by one
// goroutine at a time.
func (t *Target) Conn() *Conn { return &Conn{t: t} }

// Conn is one client's connection.
type Conn struct {
	t    *Target
	c    net.Conn
	r    *bufio.Reader
	out  []byte
	body bytes.Buffer
}

// Post sends one form and reads the whole answer; the answer's bytes are
// valid until the next call. A connection the server closed is redialled
// once for a request that was not yet answered at all.
func (w *Conn) Post(ctx context.Context, form string) (int, []byte, error) {
	fresh := false
	if w.c == nil {
		if err := w.dial(ctx); err != nil {
			return 0, nil, err
		}
		fresh = true
	}
	status, body, err := w.roundTrip(ctx, form)
	if err != nil && !fresh && errors.Is(err, errStaleConn) {
		w.Close()
		if err := w.dial(ctx); err != nil {
			return 0, nil, err
		}
		status, body, err = w.roundTrip(ctx, form)
	}
	if err != nil {
		w.Close()
	}
	return status, body, err
}

// errStaleConn: the server closed a kept-alive connection before answering.
var errStaleConn = errors.New("connection closed before an answer")

func (w *Conn) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", w.t.addr)
	if err != nil {
		return err
	}
	w.c, w.r = c, bufio.NewReaderSize(c, 4096)
	return nil
}

func (w *Conn) roundTrip(ctx context.Context, form string) (int, []byte, error) {
	deadline := time.Now().Add(60 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := w.c.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	// A cancelled ctx ends a call waiting on the server at once.
	c := w.c
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck // the call fails anyway
	defer stop()
	w.out = append(w.out[:0], w.t.head...)
	w.out = strconv.AppendInt(w.out, int64(len(form)), 10)
	w.out = append(w.out, "\r\n\r\n"...)
	w.out = append(w.out, form...)
	if _, err := w.c.Write(w.out); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(w.r, nil)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, errStaleConn
		}
		return 0, nil, err
	}
	w.body.Reset()
	_, err = io.Copy(&w.body, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.Close {
		w.Close()
	}
	return resp.StatusCode, w.body.Bytes(), nil
}

// Close closes the connection; the next Post dials again.
func (w *Conn) Close() {
	if w.c != nil {
		w.c.Close()
		w.c, w.r = nil, nil
	}
}
