package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestHTTPServerLimits: the API's server has every timeout and the header
// limit set (a server without them can be held open by slow clients).
func TestHTTPServerLimits(t *testing.T) {
	hs := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler), apiLimits())
	require.Equal(t, 5*time.Second, hs.ReadHeaderTimeout)
	require.Equal(t, 30*time.Second, hs.ReadTimeout)
	require.Equal(t, 60*time.Second, hs.WriteTimeout)
	require.Equal(t, 120*time.Second, hs.IdleTimeout)
	require.Equal(t, 64<<10, hs.MaxHeaderBytes)
}

// hostileCase is one raw exchange with the server.
type hostileCase struct {
	name string
	// raw is the request as bytes on the wire; {TOKEN} and {MSG}/{CONTACT}
	// are replaced. write, when set, writes instead (slow clients).
	raw   string
	write func(c net.Conn, tok string)
	// short runs it against a server with short timeouts (same handler).
	short bool
	// want is the status, or 0: the connection is closed without an answer.
	want int
	// cutOff accepts instead any end that serves nothing: a close, 400 or
	// 408 (what net/http answers to a slow client depends on where it was).
	cutOff bool
	// code is the JSON error code, when the answer is the API's.
	code string
	// within bounds the time to the answer or the close.
	within time.Duration
}

// TestHostileRequests sends malformed, oversized, slow and malicious
// requests to the real server (startServer, on a real listener, so the
// http.Server limits apply) and checks each answer; none of them writes
// anything.
func TestHostileRequests(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := seed.New(db.DB, db.Prefix)
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go hook.Serve(hl)
	t.Cleanup(func() { hook.Close() })
	contact, err := s.Contact(ctx, seed.Contact{Email: "a@example.test"})
	require.NoError(t, err)
	msg, err := s.Message(ctx, "MM", seed.Channel{Channel: "hook", ChannelID: 1})
	require.NoError(t, err)
	leads := db.Count(t, "leads", "")

	const tok = "hostile-token-123"
	cfg, err := loadConfig([]string{"MAUTIC_DB_DSN=" + db.DSN, "MAUTIC_TABLE_PREFIX=" + db.Prefix, "SIDECAR_TOKEN=" + tok,
		"CHANNEL_HOOK_WEBHOOK_URL=http://" + hl.Addr().String() + "/hook", "SIDECAR_WORKERS=0"}, nil)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mdb, err := openChecked(ctx, cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() { mdb.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := startServer(ctx, cfg, mdb, log, ln)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.stop() })
	require.Equal(t, apiLimits().ReadHeader, srv.http.ReadHeaderTimeout, "startServer uses the API's limits")
	require.Equal(t, apiLimits().MaxHeader, srv.http.MaxHeaderBytes)

	// The same handler behind short timeouts, for the slow clients.
	shortSrv := newHTTPServer(srv.app.Handler(), log, httpLimits{ReadHeader: time.Second, Read: 2 * time.Second,
		Write: 5 * time.Second, Idle: 5 * time.Second, MaxHeader: apiLimits().MaxHeader})
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go shortSrv.Serve(sl)
	t.Cleanup(func() { shortSrv.Close() })

	ids := fmt.Sprintf("contact_id=%d&message_id=%d", contact, msg)
	post := func(contentType, body string, extra ...string) string {
		return "POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: " + contentType +
			"\r\n" + strings.Join(extra, "") + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	form := "application/x-www-form-urlencoded"
	get := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
	}
	nested := func(depth int) string {
		return fmt.Sprintf(`{"contact_id":"%d","message_id":"%d","x":%s%s}`, contact, msg, strings.Repeat("[", depth), strings.Repeat("]", depth))
	}
	chunked := func(total int) string {
		var b strings.Builder
		b.WriteString("POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {TOKEN}\r\n" +
			"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := ids + "&pad=" + strings.Repeat("a", 4000)
		for n := 0; n < total; n += len(chunk) {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}
	manyHeaders := strings.Repeat("X-A: b\r\n", 10000)
	const quick = 3 * time.Second

	cases := []hostileCase{
		// Size.
		{name: "a 100 KiB header", raw: post(form, ids, "X-Pad: "+strings.Repeat("a", 100<<10)+"\r\n"), want: 431, within: quick},
		{name: "10,000 small headers", raw: post(form, ids, manyHeaders), want: 431, within: quick},
		{name: "a 100 KiB URL", raw: get("/v1/campaign/message?" + ids + "&pad=" + strings.Repeat("a", 100<<10)), want: 431, within: quick},
		{name: "Content-Length of 1 TB, tiny body", raw: strings.Replace(post(form, ids), fmt.Sprintf("Content-Length: %d", len(ids)),
			"Content-Length: 1000000000000", 1), want: 413, code: "payload_too_large", within: quick},
		{name: "Expect: 100-continue with 10 MB announced", raw: "POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\n" +
			"Authorization: Bearer {TOKEN}\r\nContent-Type: " + form + "\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n",
			want: 413, code: "payload_too_large", within: quick},
		{name: "a chunked body over 64 KiB", raw: chunked(100 << 10), want: 413, code: "payload_too_large", within: quick},
		{name: "a JSON body nested 100,000 deep (over 64 KiB)", raw: post("application/json", nested(100000)), want: 413,
			code: "payload_too_large", within: quick},

		// Framing.
		{name: "malformed chunk sizes", raw: "POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {TOKEN}\r\n" +
			"Content-Type: " + form + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", want: 400, code: "invalid_request", within: quick},
		{name: "Content-Length and Transfer-Encoding together (smuggling)", raw: "POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\n" +
			"Authorization: Bearer {TOKEN}\r\nContent-Type: " + form + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			want: 400, within: quick},
		{name: "two different Content-Lengths", raw: post(form, ids, "Content-Length: 3\r\n"), want: 400, within: quick},
		{name: "HTTP/1.1 without Host", raw: "GET /healthz HTTP/1.1\r\n\r\n", want: 400, within: quick},
		{name: "a CR inside a header value", raw: post(form, ids, "X-A: b\rX-Sidecar-Token: {TOKEN}\r\n"), want: 400, within: quick},
		{name: "a NUL in the token", raw: strings.Replace(post(form, ids), "Bearer {TOKEN}", "Bearer {TOKEN}\x00", 1), want: 400, within: quick},
		{name: "an unknown method", raw: "TRACE /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
			want: 405, code: "method_not_allowed", within: quick},
		{name: "an absolute URL for another host (not a proxy)", raw: "GET http://evil.example/v1/dispatches/1 HTTP/1.1\r\nHost: evil.example\r\n\r\n",
			want: 401, code: "unauthorized", within: quick},
		{name: "a gzip-encoded body is not inflated", raw: post(form, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", "Content-Encoding: gzip\r\n"),
			want: 400, code: "invalid_request", within: quick},

		// Encoding.
		{name: "invalid UTF-8 bytes in a form value", raw: post(form, "contact_id=\xff\xfe&message_id=1"), want: 400, code: "invalid_request", within: quick},
		{name: "invalid UTF-8 in a JSON idempotency_key", raw: post("application/json",
			fmt.Sprintf(`{"contact_id":"%d","message_id":"%d","idempotency_key":"k\xff\xfe"}`, contact, msg)), want: 400, code: "invalid_request", within: quick},
		{name: "overlong UTF-8 encoding of '/' in an id", raw: post(form, "contact_id=1%C0%AF&message_id=1"), want: 400, code: "invalid_request", within: quick},
		{name: "a JSON body nested 10,000 deep (under 64 KiB)", raw: post("application/json", nested(10000)), want: 400, code: "invalid_request", within: quick},
		{name: "a nested value for a known field", raw: post("application/json", `{"contact_id":[[[[1]]]],"message_id":"1"}`), want: 400,
			code: "invalid_request", within: quick},
		{name: "a number of 400 digits", raw: post("application/json", `{"contact_id":1e400,"message_id":"1"}`), want: 400, code: "invalid_request", within: quick},

		// Paths and ids.
		{name: "dot-dot segments in a dispatch id", raw: get("/v1/dispatches/..%2F..%2Fetc%2Fpasswd"), want: 404, code: "not_found", within: quick},
		{name: "an encoded dot-dot id", raw: get("/v1/dispatches/%2e%2e"), want: 400, code: "invalid_request", within: quick},
		{name: "a NUL after the id", raw: get("/v1/dispatches/1%00"), want: 400, code: "invalid_request", within: quick},
		{name: "SQL after the id", raw: get("/v1/dispatches/1;DROP%20TABLE%20leads"), want: 400, code: "invalid_request", within: quick},
		{name: "a path that climbs from an open endpoint", raw: "POST /healthz/../v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\n" +
			"Content-Type: " + form + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(ids)) + ids, want: 404, code: "not_found", within: quick},
		{name: "a doubled slash", raw: get("/v1//campaign/message?" + ids), want: 404, code: "not_found", within: quick},
		{name: "another case", raw: get("/V1/campaign/message?" + ids), want: 404, code: "not_found", within: quick},

		// SQL metacharacters in every field.
		{name: "SQL in contact_id", raw: post(form, "contact_id=1'+OR+'1'%3D'1&message_id=1"), want: 400, code: "invalid_request", within: quick},
		{name: "SQL in message_id", raw: post(form, fmt.Sprintf("contact_id=%d&message_id=1%%3B+DROP+TABLE+leads%%3B+--", contact)), want: 400,
			code: "invalid_request", within: quick},
		{name: "SQL in campaign_id", raw: post(form, ids+"&campaign_id=1+UNION+SELECT+1"), want: 400, code: "invalid_request", within: quick},
		{name: "SQL in event_id", raw: post(form, ids+"&event_id=1/**/OR/**/1%3D1"), want: 400, code: "invalid_request", within: quick},
		{name: "SQL in a JSON id", raw: post("application/json", `{"contact_id":"1\" OR \"1\"=\"1","message_id":"1"}`), want: 400,
			code: "invalid_request", within: quick},
		{name: "SQL in a query id", raw: get("/v1/campaign/message?contact_id=1%27%20OR%201%3D1&message_id=1"), want: 400, code: "invalid_request", within: quick},
		{name: "SQL in the token", raw: strings.Replace(post(form, ids), "Bearer {TOKEN}", "Bearer ' OR 1=1 --", 1), want: 401,
			code: "unauthorized", within: quick},
		{name: "SQL in a simulate id list", raw: post("application/json", fmt.Sprintf(`{"message_id":%d,"contact_ids":["1 OR 1=1"]}`, msg)),
			want: 400, code: "invalid_request", within: quick},

		// Slow clients.
		{name: "headers that never end (real limits: 5 s)", write: trickle("POST /v1/campaign/message HTTP/1.1\r\nHost: sidecar\r\n", 0, 0),
			cutOff: true, within: apiLimits().ReadHeader + 3*time.Second},
		{name: "headers at one byte per 100 ms", short: true, write: trickle(post(form, ids), 1, 100*time.Millisecond), cutOff: true,
			within: 4 * time.Second},
		{name: "a body that stops half-way", short: true, write: trickle(strings.Replace(post(form, ids), fmt.Sprintf("Content-Length: %d", len(ids)),
			"Content-Length: 100", 1), 0, 0), want: 400, code: "invalid_request", within: 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := srv.URL[len("http://"):]
			if tc.short {
				addr = sl.Addr().String()
			}
			status, body, took := exchange(t, addr, tc, tok)
			if tc.cutOff {
				require.Containsf(t, []int{0, http.StatusBadRequest, http.StatusRequestTimeout}, status, "cut off, not served: %q", body)
			} else {
				require.Equalf(t, tc.want, status, "answer %q", body)
			}
			require.LessOrEqualf(t, took, tc.within, "answered (or closed) within %s", tc.within)
			if tc.code != "" {
				var e struct {
					Error struct{ Code, Message string }
				}
				require.NoErrorf(t, json.Unmarshal([]byte(body), &e), "a JSON error: %q", body)
				require.Equal(t, tc.code, e.Error.Code)
				require.NotEmpty(t, e.Error.Message)
			}
		})
	}
	require.Zero(t, db.Count(t, "sidecar_dispatches", ""), "no hostile request was recorded")
	require.Zero(t, db.Count(t, "sidecar_dispatch_keys", ""))

	t.Run("HTTP/1.0 without Host is served", func(t *testing.T) {
		status, body, _ := exchange(t, srv.URL[len("http://"):], hostileCase{raw: strings.Replace(strings.Replace(post(form, ids),
			"HTTP/1.1", "HTTP/1.0", 1), "Host: sidecar\r\n", "", 1)}, tok)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"accepted"`)
	})
	t.Run("SQL metacharacters in an idempotency key are data", func(t *testing.T) {
		key := `k' OR '1'='1"; DROP TABLE leads; -- \ %_`
		body := ids + "&idempotency_key=" + url.QueryEscape(key)
		first, b1, _ := exchange(t, srv.URL[len("http://"):], hostileCase{raw: post(form, body)}, tok)
		require.Equal(t, http.StatusOK, first, b1)
		again, b2, _ := exchange(t, srv.URL[len("http://"):], hostileCase{raw: post(form, body)}, tok)
		require.Equal(t, http.StatusOK, again, b2)
		require.Contains(t, b2, `"duplicate"`, "the same key, compared as data")
		var stored string
		require.NoError(t, db.Get(&stored, "SELECT idempotency_key FROM "+db.T("sidecar_dispatches")+" WHERE idempotency_key IS NOT NULL"))
		require.Equal(t, key, stored, "stored verbatim")
		require.Equal(t, leads, db.Count(t, "leads", ""), "Mautic's tables are intact")
	})
}

// exchange writes tc's request on a fresh connection and reads one answer.
// It returns status 0 when the server closed the connection without one.
func exchange(t *testing.T, addr string, tc hostileCase, tok string) (int, string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	limit := tc.within
	if limit == 0 {
		limit = 10 * time.Second
	}
	require.NoError(t, c.SetReadDeadline(start.Add(limit+2*time.Second)))
	go func() {
		if tc.write != nil {
			tc.write(c, tok)
			return
		}
		_, _ = io.WriteString(c, strings.ReplaceAll(tc.raw, "{TOKEN}", tok))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	took := time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close after %s: the server is held by the client", took)
		}
		return 0, "", took
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusContinue {
		t.Fatalf("100 Continue sent for a body that is refused anyway")
	}
	return resp.StatusCode, string(bytes.TrimSpace(body)), took
}

// trickle writes raw n bytes at a time every pause (n 0: all at once),
// then keeps the connection open without writing.
func trickle(raw string, n int, pause time.Duration) func(net.Conn, string) {
	return func(c net.Conn, tok string) {
		raw := strings.ReplaceAll(raw, "{TOKEN}", tok)
		if n == 0 {
			_, _ = io.WriteString(c, raw)
			return
		}
		for i := 0; i < len(raw); i += n {
			if _, err := io.WriteString(c, raw[i:min(i+n, len(raw))]); err != nil {
				return
			}
			time.Sleep(pause) // a slow client, on purpose
		}
	}
}
