package email

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestAppendData(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"a\nb", "a\r\nb\r\n.\r\n"},
		{".x\r\n..y\r\nz.\r\n.\r\n", "..x\r\n...y\r\nz.\r\n..\r\n.\r\n"},
		{"a\r\n.\n.", "a\r\n..\r\n..\r\n.\r\n"},
		{"ends in cr\r", "ends in cr\r\n.\r\n"},
		{"\n\n", "\r\n\r\n.\r\n"},
		{"a\r.b\r\n", "a\r.b\r\n.\r\n"},
		{"", ".\r\n"},
	} {
		require.Equal(t, tc.want, string(appendData(nil, []byte(tc.in))), "%q", tc.in)
	}

	// Against textproto's DotWriter on texts of CRLF and LF lines.
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b.", ".", "..", "\r\n", "\n", " ", "=2E", "é"}
	for range 2000 {
		var in strings.Builder
		for range rng.IntN(40) + 1 {
			in.WriteString(pieces[rng.IntN(len(pieces))])
		}
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		_, err := dw.Write([]byte(in.String()))
		require.NoError(t, err)
		require.NoError(t, dw.Close())
		require.Equal(t, want.String(), string(appendData(nil, []byte(in.String()))), "%q", in.String())
	}
}

// peer is an SMTP server written out line by line, for what go-smtp cannot
// be told to do or show: leave PIPELINING out of its EHLO, answer DATA
// after a refused RCPT, or show which commands arrived together. It logs
// every command, each message as "<message>" and a connection the client
// closed as "<closed>". With pipelining it answers, as servers do, when it
// has read all the client sent so far, and logs "<answered N>"; without,
// it logs "<early>" when a command arrives before the previous one was
// answered. With chunking a BDAT chunk of a transaction whose MAIL or RCPT
// it refused is answered 554 and logged "<chunk dropped>".
type peer struct {
	pipelining bool
	chunking   bool              // offer CHUNKING: BDAT chunks are read by size
	replies    map[string]string // reply by command verb, instead of 250/354
	hangUp     bool              // close the connection after the first refusal

	mu       sync.Mutex
	log      []string
	messages [][]byte // BDAT messages received
}

func startPeer(t *testing.T, p *peer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return l.Addr().String()
}

func (p *peer) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, s)
}

func (p *peer) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

func (p *peer) reply(verb, def string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.replies[verb]; ok {
		return r
	}
	return def
}

func (p *peer) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 peer ESMTP")
	var pending []string // replies not yet written
	refused := false     // the transaction's MAIL or RCPT was refused
	answer := func() {
		for _, r := range pending {
			_, _ = tp.W.WriteString(r + "\r\n")
			if p.hangUp && r[0] >= '4' {
				_ = tp.W.Flush()
				p.record("<hung up>")
				_ = c.Close()
				break
			}
		}
		_ = tp.W.Flush()
		if p.pipelining {
			p.record(fmt.Sprintf("<answered %d>", len(pending)))
		}
		pending = nil
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			p.record("<closed>")
			return
		}
		p.record(line)
		if !p.pipelining && tp.R.Buffered() > 0 {
			p.record("<early>")
		}
		switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
		case "EHLO":
			ext := "250-peer\r\n250-8BITMIME\r\n"
			if p.pipelining {
				ext += "250-PIPELINING\r\n"
			}
			if p.chunking {
				ext += "250-CHUNKING\r\n"
			}
			pending = append(pending, ext+"250 HELP")
		case "MAIL", "RCPT":
			r := p.reply(verb, "250 2.0.0 ok")
			refused = refused || r[0] >= '4'
			pending = append(pending, r)
		case "BDAT":
			var size int
			if _, err := fmt.Sscanf(line, "BDAT %d", &size); err != nil {
				pending = append(pending, "501 5.5.4 bad BDAT")
				break
			}
			chunk := make([]byte, size)
			if _, err := io.ReadFull(tp.R, chunk); err != nil {
				p.record("<closed>")
				return
			}
			if refused {
				p.record("<chunk dropped>")
				pending = append(pending, "554 5.5.1 no valid recipients")
			} else {
				p.record("<message>")
				p.mu.Lock()
				p.messages = append(p.messages, chunk)
				p.mu.Unlock()
				pending = append(pending, p.reply(verb, "250 2.0.0 queued"))
			}
			refused = false
		case "DATA":
			r := p.reply(verb, "354 go ahead")
			pending = append(pending, r)
			answer()
			if !strings.HasPrefix(r, "354") {
				continue
			}
			if _, err := tp.ReadDotLines(); err != nil {
				p.record("<closed>")
				return
			}
			p.record("<message>")
			pending = append(pending, "250 2.0.0 queued")
		case "QUIT":
			pending = append(pending, "221 bye")
			answer()
			return
		default: // RSET, NOOP
			refused = false
			pending = append(pending, "250 2.0.0 ok")
		}
		if tp.R.Buffered() == 0 {
			answer()
		}
	}
}

// peerSender is a Sender to a new peer.
func peerSender(t *testing.T, p *peer) *Sender {
	t.Helper()
	s, _ := newSender(t, Config{URL: smtpURL("smtp", startPeer(t, p), "", "", ""), Timeout: 5 * time.Second})
	return s
}

func TestPipelinedTransaction(t *testing.T) {
	p := &peer{pipelining: true}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = ""
	for range 2 {
		_, err := s.Send(context.Background(), msg)
		require.NoError(t, err, "the peer answers MAIL only once RCPT and DATA have come")
	}
	// MAIL, RCPT and DATA arrive together and are answered together; the
	// message is the second write. One connection, no RSET in between.
	mail := []string{"MAIL FROM:<news@example.com> BODY=8BITMIME", "RCPT TO:<john@doe.email>", "DATA", "<answered 3>", "<message>", "<answered 1>"}
	require.Equal(t, append(append([]string{"EHLO " + s.helo, "<answered 1>"}, mail...), mail...), p.snapshot())
}

func TestSequentialTransaction(t *testing.T) {
	// A server without PIPELINING gets one command at a time; after a
	// refused MAIL no RCPT follows, the session is reset and reused.
	p := &peer{replies: map[string]string{"MAIL": "550 5.7.1 sender refused"}}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = ""
	_, err := s.Send(context.Background(), msg)
	require.Equal(t, channels.KindPermanent, channels.KindOf(err), "err: %v", err)
	require.Equal(t, []string{"EHLO " + s.helo, "MAIL FROM:<news@example.com> BODY=8BITMIME", "RSET"}, p.snapshot())

	p.mu.Lock()
	p.replies = nil
	p.mu.Unlock()
	_, err = s.Send(context.Background(), msg)
	require.NoError(t, err)
	log := p.snapshot()
	require.Equal(t, []string{"MAIL FROM:<news@example.com> BODY=8BITMIME", "RCPT TO:<john@doe.email>", "DATA", "<message>"}, log[3:],
		"each command waited for its reply (no <early>)")
}

func TestPipelinedDataAfterRefusal(t *testing.T) {
	// A server that refuses the contact but still opens DATA (a pipelined
	// group is answered as a whole): the sender must not send the message,
	// and closes the connection so that the server drops the open DATA.
	for _, verb := range []string{"MAIL", "RCPT"} {
		t.Run(verb, func(t *testing.T) {
			p := &peer{pipelining: true, replies: map[string]string{verb: "550 5.1.1 no such user"}}
			s := peerSender(t, p)
			msg := testMessage()
			msg.Email.BCC = ""
			_, err := s.Send(context.Background(), msg)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "john@doe.email")
			require.Eventually(t, func() bool {
				log := p.snapshot()
				return len(log) > 0 && log[len(log)-1] == "<closed>"
			}, 5*time.Second, 10*time.Millisecond)
			require.NotContains(t, p.snapshot(), "<message>")
			require.NotContains(t, p.snapshot(), "RSET", "no RSET into an open DATA")
		})
	}
}

// TestPipelinedWithBCC: with BCC copies DATA waits for the RCPT replies.
func TestPipelinedWithBCC(t *testing.T) {
	p := &peer{pipelining: true}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = "archive@example.com"
	_, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, []string{
		"EHLO " + s.helo, "<answered 1>",
		"MAIL FROM:<news@example.com> BODY=8BITMIME",
		"RCPT TO:<john@doe.email>",
		"RCPT TO:<archive@example.com>",
		"<answered 3>",
		"DATA", "<answered 1>",
		"<message>", "<answered 1>",
	}, p.snapshot())
}

// TestPipelinedRefusalThenHangUp: a server that answers MAIL with 421 and
// closes the connection fails the read of RCPT's reply; the send reports
// the 421 (transient), not the closed connection.
func TestPipelinedRefusalThenHangUp(t *testing.T) {
	p := &peer{pipelining: true, hangUp: true, replies: map[string]string{"MAIL": "421 4.3.2 shutting down"}}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = ""
	_, err := s.Send(context.Background(), msg)
	require.Error(t, err)
	require.Equal(t, channels.KindTransient, channels.KindOf(err), "err: %v", err)
	require.Contains(t, err.Error(), "421")
	require.Contains(t, p.snapshot(), "<hung up>")
}

// TestChunkedTransaction: with CHUNKING the message goes in the envelope's
// write as a BDAT chunk of its exact size, not dot-stuffed: one round trip
// per email, and the server gets the message byte for byte.
func TestChunkedTransaction(t *testing.T) {
	p := &peer{pipelining: true, chunking: true}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = ""
	msg.Email.HTML = ".starts with a dot\n" + msg.Email.HTML
	b, err := s.build(msg)
	require.NoError(t, err)
	for range 2 {
		_, err := s.Send(context.Background(), msg)
		require.NoError(t, err)
	}
	log := p.snapshot()
	require.Len(t, log, 2+2*5, "%q", log)
	for i := range 2 {
		tx := log[2+5*i : 2+5*(i+1)]
		require.Equal(t, []string{"MAIL FROM:<news@example.com> BODY=8BITMIME", "RCPT TO:<john@doe.email>"}, tx[:2])
		require.Regexp(t, `^BDAT \d+ LAST$`, tx[2])
		require.Equal(t, []string{"<message>", "<answered 3>"}, tx[3:], "one write, one answer")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Len(t, p.messages, 2)
	got, want := p.messages[0], b.raw
	// The Date header and the boundary differ between the two builds; the
	// rest is the same.
	norm := func(m []byte) string {
		s := regexp.MustCompile(`(?m)^Date: .*\r\n`).ReplaceAllString(string(m), "")
		return regexp.MustCompile(`[0-9a-f]{32}`).ReplaceAllString(s, "BOUNDARY")
	}
	require.Equal(t, norm(want), norm(got))
	require.Contains(t, string(got), "\r\n.starts with a dot", "no dot-stuffing in a chunk")
}

// TestChunkedRefusal: a server that refuses the contact drops the chunk
// (554 to BDAT); the send reports the refusal, nothing is delivered, the
// session is reset and the connection serves the next email.
func TestChunkedRefusal(t *testing.T) {
	for _, verb := range []string{"MAIL", "RCPT"} {
		t.Run(verb, func(t *testing.T) {
			p := &peer{pipelining: true, chunking: true, replies: map[string]string{verb: "550 5.1.1 no such user"}}
			s := peerSender(t, p)
			msg := testMessage()
			msg.Email.BCC = ""
			_, err := s.Send(context.Background(), msg)
			require.Error(t, err)
			require.NotEqual(t, channels.KindTransient, channels.KindOf(err), "err: %v", err)
			require.Contains(t, err.Error(), "550")
			log := p.snapshot()
			require.Contains(t, log, "<chunk dropped>")
			require.NotContains(t, log, "<message>")
			require.Equal(t, "RSET", log[len(log)-2], "%q", log)

			p.mu.Lock()
			p.replies = nil
			p.mu.Unlock()
			_, err = s.Send(context.Background(), msg)
			require.NoError(t, err)
			require.NotContains(t, p.snapshot(), "<closed>", "the same connection")
			require.Contains(t, p.snapshot(), "<message>")
		})
	}
}

// TestChunkingWithBCC: with BCC copies the message goes with DATA after
// the RCPT replies, even to a server that offers CHUNKING.
func TestChunkingWithBCC(t *testing.T) {
	p := &peer{pipelining: true, chunking: true}
	s := peerSender(t, p)
	msg := testMessage()
	msg.Email.BCC = "archive@example.com"
	_, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	log := p.snapshot()
	require.Contains(t, log, "DATA")
	for _, l := range log {
		require.NotContains(t, l, "BDAT")
	}
}
