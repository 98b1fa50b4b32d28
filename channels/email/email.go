// Package email sends Mautic emails over SMTP: it renders the emails row
// for one contact as Mautic's MailHelper does (contact tokens,
// unsubscribe/web view/tracking tokens, tracking pixel, List-Unsubscribe)
// into a MIME message (mime.go), sends it over a small pool of reused
// connections (go-mail's client connects, secures and authenticates them;
// the mail transaction itself is pipelined when the server offers
// PIPELINING, the message sent as a BDAT chunk when it offers CHUNKING),
// and classifies SMTP failures into the channels error kinds.
//
// Classification (channels.Sender contract):
//   - malformed recipient address: Unreachable, nothing sent;
//   - 5xx at RCPT for the contact saying the mailbox or domain is bad
//     (RFC 3463 X.1.1/2/3/6/10, X.2.1, or a bare 550/551/553): Unreachable;
//     the same codes at the end of DATA: Unreachable;
//   - other 5xx (MAIL FROM, DATA, policy refusals at RCPT, greeting,
//     authentication 530/535): Permanent; those that concern every send are
//     also logged at error level;
//   - any 4xx, network, TLS and timeout errors, a cancelled context:
//     Transient.
//
// Errors never contain the SMTP password nor the recipient's address.
package email

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mautic-mm/sidecar/channels"
)

// Sender sends channels.Email messages over SMTP. It is safe for
// concurrent use.
type Sender struct {
	cfg       resolved
	log       *slog.Logger
	tlsConfig *tls.Config
	helo      string
	pool      *pool
	now       func() time.Time
}

// New returns a Sender for cfg. The logger should already carry the
// channel attribute (main passes log.With("channel", "email")).
func New(cfg Config, log *slog.Logger) (*Sender, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("email config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	helo := r.server.helo
	if helo == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			helo = h
		} else {
			helo = "localhost"
		}
	}
	s := &Sender{
		cfg: r,
		log: log,
		tlsConfig: &tls.Config{
			ServerName:         r.server.host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: !r.server.verifyPeer, //nolint:gosec // opt-in with verify_peer=0, for local test servers.
		},
		helo: helo,
		pool: newPool(r.PoolSize, r.Timeout),
		now:  time.Now,
	}
	if r.siteBase == "" {
		log.Warn("email: no site url, emails go out without unsubscribe links and open tracking")
	}
	if !r.server.verifyPeer {
		log.Warn("email: TLS certificate verification is off (verify_peer=0)")
	}
	return s, nil
}

// Close closes the pooled connections. Sends in flight finish; later sends
// fail.
func (s *Sender) Close() error {
	s.pool.close()
	return nil
}

// Send implements channels.Sender. It renders msg.Email for msg.Contact
// and delivers it to msg.To. The receipt's ProviderID is the Message-ID
// header (angle brackets included) and Tokens holds every token value used,
// for email_stats.tokens.
func (s *Sender) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout,
		fmt.Errorf("email send took longer than %s: %w", s.cfg.Timeout, context.DeadlineExceeded))
	defer cancel()
	// A send that cannot succeed (a malformed address, no content) fails
	// before it waits for a connection.
	rcpt, from, err := s.addresses(msg)
	if err != nil {
		return channels.Receipt{}, err
	}
	// Then the slot: the message is built only when it can go out, so
	// that a batch's sends waiting for a connection hold no messages.
	if err := s.pool.enter(ctx); err != nil {
		if errors.Is(err, errClosed) {
			return channels.Receipt{}, channels.Transient(err, 0)
		}
		return channels.Receipt{}, ctxError(ctx)
	}
	defer s.pool.leave()
	b := s.compose(msg, rcpt, from)
	defer b.release()
	for _, note := range b.skipped {
		s.log.Warn("email content problem", "email_id", msg.Email.ID, "contact_id", msg.Contact.ID, "detail", note)
	}

	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return channels.Receipt{}, ctxError(ctx)
		}
		c, err := s.conn(ctx)
		if err != nil {
			var op *operatorError
			if errors.As(err, &op) {
				s.log.Error("email: smtp server refuses the sidecar", "contact_id", msg.Contact.ID, "err", err)
			}
			return channels.Receipt{}, err
		}
		keep, retry, err := s.transact(ctx, c, b)
		if keep {
			s.pool.put(c)
		} else {
			s.pool.drop(c)
		}
		if err == nil {
			s.log.Debug("email sent", "contact_id", msg.Contact.ID, "provider_id", b.messageID, "attempt", attempt)
			return channels.Receipt{ProviderID: b.messageID, SentAt: s.now().UTC(), Tokens: b.tokens}, nil
		}
		if ctx.Err() != nil {
			return channels.Receipt{}, ctxError(ctx)
		}
		if retry && c.reused && attempt <= s.cfg.PoolSize {
			// A pooled connection the server had closed: nothing was
			// delivered; try the next one (the pool holds at most
			// PoolSize, then a fresh dial).
			s.log.Debug("email: stale pooled connection", "contact_id", msg.Contact.ID, "err", err)
			continue
		}
		var op *operatorError
		if errors.As(err, &op) {
			s.log.Error("email: smtp server refuses the sidecar", "contact_id", msg.Contact.ID, "err", err)
		}
		return channels.Receipt{}, err
	}
}

// conn returns a pooled connection or dials a new one; the caller holds a
// slot.
func (s *Sender) conn(ctx context.Context) (*conn, error) {
	c, err := s.pool.take()
	if err != nil {
		return nil, channels.Transient(err, 0)
	}
	if c != nil {
		return c, nil
	}
	return s.dial(ctx)
}

// transact runs one SMTP mail transaction on c. keep reports whether c can
// be reused; retry whether the failure happened before anything was
// accepted and may be retried at once on a fresh connection.
//
// With a server that offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go
// out in one write and their replies are read together, then the message
// and its end-of-data line in one more write: two round trips per email
// instead of five. With a server that also offers CHUNKING (RFC 3030) the
// message goes in the first write as a BDAT chunk: one round trip. No
// RSET follows a delivered message (go-mail sent one): the end of DATA
// (or BDAT LAST) ends the transaction (RFC 5321 4.1.1.4), so the next
// MAIL can follow.
func (s *Sender) transact(ctx context.Context, c *conn, b *built) (keep, retry bool, err error) {
	stop := context.AfterFunc(ctx, c.raw.abort)
	defer func() {
		if !stop() {
			keep = false
		}
	}()
	sc := c.smtp
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := sc.UpdateDeadline(timeout + deadlineMargin); err != nil {
		return false, true, channels.Transient(fmt.Errorf("smtp: %w", err), 0)
	}
	// dataOpen is set when the server accepted a pipelined DATA that
	// must not be used (MAIL or RCPT was refused): the connection is then
	// dropped, which makes the server discard the unfinished message.
	dataOpen := false
	// fail turns an SMTP error into the send's error. After a reply error
	// the session is reset (RSET) and kept if the server agrees.
	fail := func(st stage, err error, beforeData bool) (bool, bool, error) {
		var te *textproto.Error
		if errors.As(err, &te) {
			if te.Code == 421 && st == stageMail && c.reused {
				// A pooled connection the server is closing: nothing
				// was accepted, the caller retries on another one.
				return false, true, channels.Transient(fmt.Errorf("smtp %s: %w", st, err), 0)
			}
			keep := te.Code != 421 && !dataOpen && sc.Reset() == nil
			return keep, false, replyError(st, te, b.rcpt)
		}
		return false, beforeData, channels.Transient(fmt.Errorf("smtp %s: %w", st, err), 0)
	}
	if c.reused && time.Since(c.idleFrom) > noopAfter {
		// A connection idle for a while may have been closed by the
		// server: check it (go-mail's NOOP). A recently used one is sent
		// MAIL at once; if the server closed it anyway, MAIL fails before
		// anything was accepted and the send moves to another connection.
		if err := sc.Noop(); err != nil {
			return false, true, channels.Transient(fmt.Errorf("smtp %s: %w", stageNoop, err), 0)
		}
	}

	// The envelope. DATA joins the group only without BCC copies: with
	// them, a refused contact must not leave a DATA open for the copies.
	// With CHUNKING (RFC 3030, whose BDAT may be pipelined) the message
	// itself joins it, as BDAT's chunk: one round trip per email, and no
	// dot-stuffing. A server that refused the contact answers BDAT with
	// an error and drops the chunk: nothing reaches anyone. Not with BCC
	// copies either, for the same reason as DATA.
	chunked := c.chunking && c.pipelining && len(b.bcc) == 0
	cmds := make([]command, 0, 3+len(b.bcc))
	cmds = append(cmds,
		command{line: "MAIL FROM:" + envelope(b.from) + c.mailParams, expect: 250, st: stageMail, vital: true},
		command{line: "RCPT TO:" + envelope(b.rcpt), expect: 25, st: stageRcpt, vital: true})
	for _, bcc := range b.bcc {
		cmds = append(cmds, command{line: "RCPT TO:" + envelope(bcc), expect: 25, st: stageRcpt})
	}
	data := command{line: "DATA", expect: 354, st: stageData, vital: true}
	dataInGroup := len(b.bcc) == 0 && !chunked
	switch {
	case chunked:
		cmds = append(cmds, command{line: "BDAT " + strconv.Itoa(len(b.raw)) + " LAST", payload: b.raw, expect: 250,
			st: stageDataEnd, vital: true})
	case dataInGroup:
		cmds = append(cmds, data)
	}
	for _, cmd := range cmds {
		if strings.ContainsAny(cmd.line, "\r\n") {
			return true, false, channels.Permanent(fmt.Errorf("smtp %s: line break in an address", cmd.st))
		}
	}
	replies, n, err := exchange(sc.Text, cmds, c.pipelining)
	if err != nil {
		// A server that refuses and hangs up (421 to MAIL, say) fails the
		// read of the next reply: the refusal is the news.
		for i, r := range replies[:n] {
			if r != nil {
				_, retry, err := fail(cmds[i].st, r, true)
				return false, retry, err
			}
		}
		// A connection that fails before any reply is one the server had
		// closed: nothing was accepted, try another. Once the server has
		// answered, a chunk it read may have been delivered.
		return false, !chunked || n == 0, channels.Transient(err, 0)
	}
	dataOpen = dataInGroup && n == len(cmds) && replies[n-1] == nil
	if replies[0] != nil {
		return fail(stageMail, replies[0], true)
	}
	if replies[1] != nil {
		return fail(stageRcpt, replies[1], true)
	}
	if chunked {
		if replies[2] != nil {
			return fail(stageDataEnd, replies[2], false)
		}
		return true, false, nil
	}
	for _, r := range replies[2 : 2+len(b.bcc)] {
		// A refused BCC copy must not cost the contact their email (Mautic
		// would fail the whole send); it is logged for the operator.
		var te *textproto.Error
		if errors.As(r, &te) {
			s.log.Warn("email: bcc recipient refused", "code", te.Code)
		}
	}
	if !dataInGroup {
		replies, _, err := exchange(sc.Text, []command{data}, false)
		if err != nil {
			return false, true, channels.Transient(err, 0)
		}
		if replies[0] != nil {
			return fail(stageData, replies[0], true)
		}
	} else if replies[n-1] != nil {
		return fail(stageData, replies[n-1], true)
	}
	dataOpen = false

	w := sc.Text.W
	_, werr := w.Write(b.dotted())
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil {
		return false, false, channels.Transient(fmt.Errorf("smtp write: %w", werr), 0)
	}
	if _, _, err := sc.Text.ReadResponse(250); err != nil {
		return fail(stageDataEnd, err, false)
	}
	return true, false, nil
}

// command is one SMTP command of a mail transaction.
type command struct {
	line    string
	payload []byte // written right after the line (BDAT's chunk)
	expect  int    // the reply code expected, as textproto.ReadResponse takes it
	st      stage
	vital   bool // its refusal ends the transaction
}

// exchange sends cmds and reads their replies in order. With pipelining
// they go out in one write and every reply is read; without it each
// command waits for the previous reply, and none follows a vital
// command's refusal. replies[i] is command i's refusal (a
// *textproto.Error), nil when it was accepted; n is how many were
// answered. err is a failure of the connection or of the protocol.
func exchange(tp *textproto.Conn, cmds []command, pipelining bool) (replies []error, n int, err error) {
	replies = make([]error, len(cmds))
	w := tp.W
	for n < len(cmds) {
		group := cmds[n : n+1]
		if pipelining {
			group = cmds[n:]
		}
		writeGroup(w, group)
		if err := w.Flush(); err != nil {
			return replies, n, fmt.Errorf("smtp %s: %w", group[0].st, err)
		}
		for _, cmd := range group {
			_, _, err := tp.ReadResponse(cmd.expect)
			var te *textproto.Error
			if err != nil && !errors.As(err, &te) {
				return replies, n, fmt.Errorf("smtp %s: %w", cmd.st, err)
			}
			replies[n] = err
			n++
			if err != nil && cmd.vital && !pipelining {
				return replies, n, nil
			}
		}
	}
	return replies, n, nil
}

// writeGroup writes a group of commands into w. A group bigger than w's
// buffer (one with a BDAT chunk) is put together first, so that it goes
// out in one write rather than a buffer's worth and then the rest.
func writeGroup(w *bufio.Writer, group []command) {
	size := 0
	for _, cmd := range group {
		size += len(cmd.line) + 2 + len(cmd.payload)
	}
	if size <= w.Available() {
		for _, cmd := range group {
			_, _ = w.WriteString(cmd.line)
			_, _ = w.WriteString("\r\n")
			_, _ = w.Write(cmd.payload)
		}
		return
	}
	frame := framePool.Get().(*[]byte)
	f := (*frame)[:0]
	for _, cmd := range group {
		f = append(f, cmd.line...)
		f = append(f, "\r\n"...)
		f = append(f, cmd.payload...)
	}
	_, _ = w.Write(f) // errors show at the Flush that follows
	if cap(f) <= maxPooled {
		*frame = f
		framePool.Put(frame)
	}
}

// framePool holds the buffers writeGroup puts big groups together in.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// envelope formats an address for MAIL FROM / RCPT TO.
func envelope(addr string) string {
	return (&mail.Address{Address: addr}).String()
}
