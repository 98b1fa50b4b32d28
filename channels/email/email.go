// Package email sends Mautic emails over SMTP with go-mail: it renders the
// emails row for one contact as Mautic's MailHelper does (contact tokens,
// unsubscribe/web view/tracking tokens, tracking pixel, List-Unsubscribe),
// sends it over a small pool of reused connections, and classifies SMTP
// failures into the channels error kinds.
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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/textproto"
	"os"
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
	b, err := s.build(msg)
	if err != nil {
		return channels.Receipt{}, err
	}
	for _, note := range b.skipped {
		s.log.Warn("email content problem", "email_id", msg.Email.ID, "contact_id", msg.Contact.ID, "detail", note)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout,
		fmt.Errorf("email send took longer than %s: %w", s.cfg.Timeout, context.DeadlineExceeded))
	defer cancel()

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
		if err == nil {
			if keep {
				s.pool.put(c)
			} else {
				s.pool.drop(c)
			}
			s.log.Debug("email sent", "contact_id", msg.Contact.ID, "provider_id", b.messageID, "attempt", attempt)
			return channels.Receipt{ProviderID: b.messageID, SentAt: s.now().UTC(), Tokens: b.tokens}, nil
		}
		if keep {
			s.pool.put(c)
		} else {
			s.pool.drop(c)
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

// conn returns a pooled connection or dials a new one, holding a pool slot
// in both cases.
func (s *Sender) conn(ctx context.Context) (*conn, error) {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		if errors.Is(err, errClosed) {
			return nil, channels.Transient(err, 0)
		}
		return nil, ctxError(ctx)
	}
	if c != nil {
		return c, nil
	}
	c, err = s.dial(ctx)
	if err != nil {
		s.pool.release()
		return nil, err
	}
	return c, nil
}

// transact runs one SMTP mail transaction on c. keep reports whether c can
// be reused; retry whether the failure happened before anything was
// accepted and may be retried at once on a fresh connection.
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
			keep := te.Code != 421 && sc.Reset() == nil
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
	if err := sc.Mail(envelope(b.from)); err != nil {
		return fail(stageMail, err, true)
	}
	if err := sc.Rcpt(envelope(b.rcpt)); err != nil {
		return fail(stageRcpt, err, true)
	}
	for _, bcc := range b.bcc {
		// A refused BCC copy must not cost the contact their email (Mautic
		// would fail the whole send); it is logged for the operator.
		if err := sc.Rcpt(envelope(bcc)); err != nil {
			var te *textproto.Error
			if !errors.As(err, &te) {
				return fail(stageRcpt, err, true)
			}
			s.log.Warn("email: bcc recipient refused", "code", te.Code)
		}
	}
	w, err := sc.Data()
	if err != nil {
		return fail(stageData, err, true)
	}
	if _, err := b.msg.WriteTo(w); err != nil {
		_ = w.Close()
		return false, false, channels.Transient(fmt.Errorf("smtp write: %w", err), 0)
	}
	if err := w.Close(); err != nil {
		return fail(stageDataEnd, err, false)
	}
	// Delivered. RSET readies the connection for the next message, as
	// go-mail does after each message.
	if err := sc.Reset(); err != nil {
		return false, false, nil
	}
	return true, false, nil
}

// envelope formats an address for MAIL FROM / RCPT TO.
func envelope(addr string) string {
	return (&mail.Address{Address: addr}).String()
}
