package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// errClosed is returned by Send after Close.
var errClosed = errors.New("email sender closed")

// aLongTimeAgo is a deadline in the past: it fails pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// deadlineMargin puts connection deadlines after the send's context
// deadline.
const deadlineMargin = time.Second

// abortConn is the TCP connection under the SMTP client (and under TLS).
// abort fails all current and future I/O, which is how a send's context
// cancels go-mail calls that take no context. go-mail moves the deadline
// before every command, so the aborted state must stick.
type abortConn struct {
	net.Conn
	mu      sync.Mutex
	aborted bool
}

func (c *abortConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	_ = c.Conn.SetDeadline(aLongTimeAgo)
}

func (c *abortConn) deadline(t time.Time) time.Time {
	if c.aborted {
		return aLongTimeAgo
	}
	return t
}

func (c *abortConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.deadline(t))
}

func (c *abortConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.deadline(t))
}

func (c *abortConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.deadline(t))
}

// conn is one SMTP connection of the pool.
type conn struct {
	smtp   *smtp.Client
	raw    *abortConn
	reused bool
	tls    bool
	// From the server's EHLO: whether it takes pipelined commands and
	// BDAT (CHUNKING, RFC 3030), and the parameters of MAIL FROM
	// (BODY=8BITMIME, SMTPUTF8), as go-mail would send them.
	pipelining bool
	chunking   bool
	mailParams string
	idleFrom   time.Time // when it went back to the pool
}

// maxIdle is how long a pooled connection may wait unused before it is
// closed instead of reused: below the idle timeout of common SMTP servers
// (Postfix 300 s, many relays 60 s, some test servers 30 s), so that a send
// after a quiet period does not meet a connection the server dropped.
const maxIdle = 20 * time.Second

// noopAfter is the idle time after which a pooled connection is checked
// with NOOP before use; below it the check's round trip is saved.
const noopAfter = 2 * time.Second

// close ends the connection: politely (QUIT, bounded by timeout) when it
// is healthy, at once otherwise.
func (c *conn) close(polite bool, timeout time.Duration) {
	if c == nil || c.smtp == nil {
		if c != nil && c.raw != nil {
			_ = c.raw.Close()
		}
		return
	}
	if polite && c.smtp.UpdateDeadline(timeout) == nil && c.smtp.Quit() == nil {
		return
	}
	_ = c.smtp.Close()
}

// pool keeps up to size idle connections and lets at most size sends run
// at once: a send holds a slot (enter, leave) from before its message is
// built until its transaction ends, so that no more messages than
// connections wait in memory.
type pool struct {
	slots   chan struct{}
	timeout time.Duration

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

func newPool(size int, timeout time.Duration) *pool {
	return &pool{slots: make(chan struct{}, size), timeout: timeout}
}

// enter waits for a send slot; leave frees it.
func (p *pool) enter(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.slots
		return errClosed
	}
	return nil
}

func (p *pool) leave() { <-p.slots }

// take returns an idle connection, or nil when the caller must dial one.
// The caller holds a slot.
func (p *pool) take() (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed
	}
	// Connections idle too long are closed: the server has likely dropped
	// them. The newest is at the end.
	var stale []*conn
	now := time.Now()
	for len(p.idle) > 0 && now.Sub(p.idle[0].idleFrom) > maxIdle {
		stale = append(stale, p.idle[0])
		p.idle = p.idle[1:]
	}
	var c *conn
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		c.reused = true
	}
	p.mu.Unlock()
	for _, s := range stale {
		go s.close(true, p.timeout)
	}
	return c, nil
}

// put keeps a healthy connection for reuse.
func (p *pool) put(c *conn) {
	p.mu.Lock()
	keep := !p.closed && len(p.idle) < cap(p.slots)
	if keep {
		c.idleFrom = time.Now()
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		c.close(true, p.timeout)
	}
}

// drop closes a broken connection.
func (p *pool) drop(c *conn) { c.close(false, 0) }

// close closes the idle connections; connections in use are closed when
// they come back.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close(true, p.timeout)
		}()
	}
	wg.Wait()
}

// dial opens, secures and authenticates one connection. The send's context
// aborts it at any step.
func (s *Sender) dial(ctx context.Context) (*conn, error) {
	c := &conn{}
	var (
		mu   sync.Mutex
		stop = func() bool { return true }
	)
	srv := s.cfg.server
	dialFunc := func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{}
		nc, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		ac := &abortConn{Conn: nc}
		mu.Lock()
		c.raw = ac
		stop = context.AfterFunc(ctx, ac.abort)
		mu.Unlock()
		if !srv.implicitTLS {
			return ac, nil
		}
		tc := tls.Client(ac, s.tlsConfig)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = ac.Close()
			return nil, err
		}
		return tc, nil
	}
	policy := gomail.TLSOpportunistic
	if srv.implicitTLS || !srv.autoTLS {
		// Implicit TLS is done by dialFunc; auto_tls=0 means plain SMTP.
		policy = gomail.NoTLS
	}
	mc, err := gomail.NewClient(srv.host,
		gomail.WithPort(srv.port),
		// The send's context is the real bound; the connection deadline
		// is a safety net set a little later, so that the context's error
		// is the one reported.
		gomail.WithTimeout(s.cfg.Timeout+deadlineMargin),
		gomail.WithHELO(s.helo),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(s.tlsConfig),
		gomail.WithDialContextFunc(dialFunc),
	)
	if err != nil {
		return nil, dialError(fmt.Errorf("smtp client: %w", err), stageConnect)
	}
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	c.smtp = sc
	if err == nil {
		if _, ok := sc.TLSConnectionState(); ok {
			c.tls = true
		}
		c.pipelining, _ = sc.Extension("PIPELINING")
		c.chunking, _ = sc.Extension("CHUNKING")
		if ok, _ := sc.Extension("8BITMIME"); ok {
			c.mailParams += " BODY=8BITMIME"
		}
		if ok, _ := sc.Extension("SMTPUTF8"); ok {
			c.mailParams += " SMTPUTF8"
		}
		switch {
		case srv.requireTLS && !c.tls:
			err = dialError(errors.New("smtp: server does not offer STARTTLS and require_tls is set"), stagePolicy)
		case srv.user != "":
			err = s.authenticate(sc)
		}
	} else {
		err = dialError(err, stageConnect)
	}
	mu.Lock()
	aborted := !stop()
	mu.Unlock()
	if err == nil && aborted {
		err = context.Cause(ctx)
	}
	if err != nil {
		c.close(false, 0)
		if ctx.Err() != nil {
			return nil, ctxError(ctx)
		}
		return nil, err
	}
	return c, nil
}

// authenticate runs SMTP AUTH when the server advertises it; like Symfony
// Mailer, credentials are not used with a server that offers no AUTH.
func (s *Sender) authenticate(sc *smtp.Client) error {
	ok, _ := sc.Extension("AUTH")
	if !ok {
		return nil
	}
	if err := sc.Auth(&auth{user: s.cfg.server.user, pass: s.cfg.server.pass}); err != nil {
		return dialError(fmt.Errorf("smtp auth: %w", err), stageAuth)
	}
	return nil
}
