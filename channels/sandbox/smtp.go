package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPOptions configure the SMTP stand-in.
type SMTPOptions struct {
	// Username and Password, when set, make AUTH PLAIN mandatory with these
	// credentials. When empty, AUTH is optional and any credentials are
	// accepted. AUTH is offered without TLS (the server is on loopback).
	Username string
	Password string
	// RejectRecipients are refused at RCPT TO with 550 5.1.1 (case
	// insensitive). More can be added with Reject.
	RejectRecipients []string
	// CountOnly counts the accepted mail instead of keeping it, so a load
	// test runs in constant memory: Count and WaitFor work, Messages returns
	// nothing.
	CountOnly bool
}

// Mail is one accepted message.
type Mail struct {
	From string
	To   []string
	Data []byte
	// Username is the AUTH user, "" without AUTH.
	Username string
	At       time.Time
}

// Message parses the data as an RFC 5322 message.
func (m Mail) Message() (*mail.Message, error) {
	return mail.ReadMessage(bytes.NewReader(m.Data))
}

// SMTPServer is an in-process SMTP server on 127.0.0.1 that records the
// mail it accepts. It is safe for concurrent use.
type SMTPServer struct {
	opts SMTPOptions
	srv  *smtp.Server
	addr string

	mu       sync.Mutex
	mails    []Mail
	count    int // accepted mail, also in CountOnly mode
	reject   map[string]bool
	rejected []string
	changed  changes
}

// StartSMTP listens on 127.0.0.1 (a free port) and serves until Close.
func StartSMTP(opts SMTPOptions) (*SMTPServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox smtp listen: %w", err)
	}
	s := &SMTPServer{opts: opts, addr: l.Addr().String(), reject: map[string]bool{}, changed: newChanges()}
	for _, a := range opts.RejectRecipients {
		s.reject[strings.ToLower(a)] = true
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "sandbox.localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	srv.ErrorLog = discardLogger{}
	s.srv = srv
	go func() { _ = srv.Serve(l) }()
	return s, nil
}

// Addr is host:port.
func (s *SMTPServer) Addr() string { return s.addr }

// URL is the SMTP_URL for this server: smtp://[user:pass@]127.0.0.1:port.
func (s *SMTPServer) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	return u.String()
}

// Reject refuses the given recipients from now on.
func (s *SMTPServer) Reject(addresses ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addresses {
		s.reject[strings.ToLower(a)] = true
	}
}

// Messages returns the accepted mail, in order (nothing in CountOnly mode).
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Count returns how many messages were accepted.
func (s *SMTPServer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Rejected returns the recipients refused at RCPT, in order.
func (s *SMTPServer) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// WaitFor blocks until at least n messages were accepted or ctx is done.
func (s *SMTPServer) WaitFor(ctx context.Context, n int) error {
	count, err := s.changed.waitFor(ctx, &s.mu, n, func() int { return s.count })
	if err != nil {
		return fmt.Errorf("sandbox smtp: %d of %d messages: %w", count, n, err)
	}
	return nil
}

// Close stops the server.
func (s *SMTPServer) Close() error { return s.srv.Close() }

// session is one SMTP connection's transaction state.
type session struct {
	s        *SMTPServer
	username string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms implements smtp.AuthSession: PLAIN only.
func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth implements smtp.AuthSession.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		o := ss.s.opts
		if o.Username != "" && (!equal(username, o.Username) || !equal(password, o.Password)) {
			return smtp.ErrAuthFailed
		}
		ss.username = username
		return nil
	}), nil
}

// Mail implements smtp.Session.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.username == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

// Rcpt implements smtp.Session, refusing the rejected recipients with 550.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.reject[strings.ToLower(to)] {
		ss.s.rejected = append(ss.s.rejected, to)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "sandbox: mailbox unavailable"}
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data implements smtp.Session: it records the message.
func (ss *session) Data(r io.Reader) error {
	var data []byte
	var err error
	if ss.s.opts.CountOnly {
		_, err = io.Copy(io.Discard, r)
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return err
	}
	if len(ss.to) == 0 {
		return errors.New("no valid recipients")
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.count++
	if !ss.s.opts.CountOnly {
		ss.s.mails = append(ss.s.mails, Mail{From: ss.from, To: append([]string(nil), ss.to...), Data: data, Username: ss.username, At: time.Now().UTC()})
	}
	ss.s.changed.notify()
	return nil
}

// Reset implements smtp.Session.
func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

// Logout implements smtp.Session.
func (ss *session) Logout() error { return nil }

// discardLogger silences go-smtp's connection error log.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
