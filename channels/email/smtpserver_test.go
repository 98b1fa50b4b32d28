package email

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// An in-process SMTP server for the sender tests (the idea of
// Alertmanager's notify/email/email_test.go mock server), built on
// emersion/go-smtp and listening on 127.0.0.1:0.

// delivery is one accepted message.
type delivery struct {
	From string
	To   []string
	Data []byte
	User string // authenticated user, "" without AUTH
	TLS  bool
}

// backend records deliveries and can be told to fail.
type backend struct {
	// Failures, nil for success.
	mailErr, dataErr, dataEndErr *smtp.SMTPError
	rcptErr                      map[string]*smtp.SMTPError // by address
	// Auth: when user is set the server offers AUTH PLAIN and requires it.
	user, pass string
	// inData, when set, receives a value when DATA starts and the session
	// then waits for release (or the connection to end).
	inData  chan struct{}
	release chan struct{}

	mu         sync.Mutex
	deliveries []delivery
	seen       map[*smtp.Conn]bool
	active     int
	maxActive  int
	conns      []*smtp.Conn
	authFails  int
}

func (be *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	be.mu.Lock()
	defer be.mu.Unlock()
	// go-smtp starts a new session after STARTTLS: count connections.
	if be.seen == nil {
		be.seen = map[*smtp.Conn]bool{}
	}
	if !be.seen[c] {
		be.seen[c] = true
		be.conns = append(be.conns, c)
	}
	be.active++
	be.maxActive = max(be.maxActive, be.active)
	s := &session{be: be, conn: c}
	if be.user != "" {
		return &authSession{s}, nil
	}
	return s, nil
}

// snapshot returns the deliveries, the number of connections accepted and
// the most sessions open at once.
func (be *backend) snapshot() (deliveries []delivery, conns, maxActive int) {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]delivery(nil), be.deliveries...), len(be.seen), be.maxActive
}

// closeConns closes every server-side connection (an idle timeout).
func (be *backend) closeConns() {
	be.mu.Lock()
	conns := be.conns
	be.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

type session struct {
	be     *backend
	conn   *smtp.Conn
	user   string
	from   string
	to     []string
	closed bool
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error {
	if !s.closed {
		s.closed = true
		s.be.mu.Lock()
		s.be.active--
		s.be.mu.Unlock()
	}
	return nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.be.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	if s.be.mailErr != nil {
		return s.be.mailErr
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.be.rcptErr[to]; err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if s.be.dataErr != nil {
		return s.be.dataErr
	}
	if s.be.inData != nil {
		s.be.inData <- struct{}{}
		<-s.be.release
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.be.dataEndErr != nil {
		return s.be.dataEndErr
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.be.mu.Lock()
	defer s.be.mu.Unlock()
	s.be.deliveries = append(s.be.deliveries, delivery{From: s.from, To: s.to, Data: data, User: s.user, TLS: isTLS})
	return nil
}

// authSession adds AUTH PLAIN.
type authSession struct{ *session }

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.be.user || pass != s.be.pass {
			s.be.mu.Lock()
			s.be.authFails++
			s.be.mu.Unlock()
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.user = user
		return nil
	}), nil
}

// tlsMode is how the test server offers TLS.
type tlsMode int

const (
	plainOnly tlsMode = iota
	startTLS
	implicitTLS
)

// startServer serves be on 127.0.0.1:0 and returns its host:port.
func startServer(t testing.TB, be *backend, mode tlsMode) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	switch mode {
	case startTLS:
		srv.TLSConfig = testTLSConfig(t)
	case implicitTLS:
		l = tls.NewListener(l, testTLSConfig(t))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	}()
	t.Cleanup(func() {
		if be.release != nil {
			close(be.release)
		}
		_ = srv.Close()
		// Close misses a listener that Serve has not registered yet.
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

// testTLSConfig is a server config with a fresh self-signed certificate
// for 127.0.0.1 and localhost.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sidecar test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// smtpURL builds an SMTP_URL for addr.
func smtpURL(scheme, addr, user, pass, query string) string {
	u := url.URL{Scheme: scheme, Host: addr, RawQuery: query}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u.String()
}

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
