package email

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

const (
	testSecret   = "3b0e1e5cbd1f7e2a9f14c3b6a2d8e0f1c4b7a9d2e5f8a1b3c6d9e2f5a8b1c4d7"
	testSiteURL  = "https://m.example.com/index.php/"
	testHash     = "65f2b8a1c3d4e9876543210"
	testPassword = "Sup3r-s3cret!pw"
)

func str(s string) *string { return &s }

// lockedBuffer collects log output from concurrent sends.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newSender(t testing.TB, cfg Config) (*Sender, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.From == "" {
		cfg.From = "Mautic <mautic@example.com>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := New(cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, logs
}

func testMessage() channels.Message {
	return channels.Message{
		Key:        "dispatch-42-email",
		Channel:    channels.Email,
		ChannelID:  7,
		MessageID:  3,
		CampaignID: 2,
		EventID:    41,
		Contact: channels.Contact{
			ID: 99,
			Fields: map[string]*string{
				"firstname": str("John"),
				"lastname":  str("Doe"),
				"email":     str("john@doe.email"),
				"company":   str("Mautic"),
				"country":   nil,
			},
			Company: map[string]*string{"companyzip": str("77008")},
		},
		To:           "john@doe.email",
		TrackingHash: testHash,
		Email: &channels.EmailContent{
			ID:      7,
			Name:    "Welcome",
			Subject: "Hello {contactfield=firstname} from {contactfield=company}",
			HTML: `<html><body><p>Hi {contactfield=firstname|there}, zip {contactfield=companyzip},` +
				` country {contactfield=country|USA}.</p>` +
				`<a href="{unsubscribe_url}">unsubscribe</a> <a href="{webview_url}">view</a>` +
				` <a href="{dnc_url}">dnc</a> <a href="https://x.test/?e=%7Bcontactfield=email|true%7D">x</a>` +
				` {unsubscribe_text} {signature} [{Subject}]</body></html>`,
			Text:        "Hi {contactfield=firstname}! Unsubscribe: {unsubscribe_url}",
			FromAddress: "news@example.com",
			FromName:    "News Team",
			ReplyTo:     "reply@example.com",
			BCC:         "archive@example.com, not an address",
			Headers: map[string]string{
				"X-Campaign":   "c-{contactfield=lastname}",
				"X-Injected":   "a\r\nBcc: evil@example.com",
				"Subject":      "override",
				"Bad Name":     "x",
				"x-mailer-tag": "sidecar",
			},
		},
	}
}

// parsed is a received message split into headers and parts.
type parsed struct {
	header mail.Header
	parts  map[string]string // media type → decoded body
}

func parseMessage(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	p := parsed{header: m.Header, parts: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	if !strings.HasPrefix(mediaType, "multipart/") {
		p.parts[mediaType] = decodeBody(t, m.Header.Get("Content-Transfer-Encoding"), m.Body)
		return p
	}
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		pt, _, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		require.NoError(t, err)
		// multipart.Reader already decodes quoted-printable.
		p.parts[pt] = decodeBody(t, part.Header.Get("Content-Transfer-Encoding"), part)
	}
	return p
}

func decodeBody(t *testing.T, cte string, r io.Reader) string {
	t.Helper()
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func expectedHMAC(email string) string {
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(email))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSendBuildsMauticMessage(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, plainOnly)
	s, logs := newSender(t, Config{
		URL:       smtpURL("smtp", addr, "", "", ""),
		SiteURL:   testSiteURL,
		SecretKey: testSecret,
	})

	msg := testMessage()
	rcpt, err := s.Send(context.Background(), msg)
	require.NoError(t, err)

	deliveries, _, _ := be.snapshot()
	require.Len(t, deliveries, 1)
	d := deliveries[0]
	require.Equal(t, "news@example.com", d.From)
	require.Equal(t, []string{"john@doe.email", "archive@example.com"}, d.To)

	p := parseMessage(t, d.Data)
	h := p.header
	from, err := mail.ParseAddress(h.Get("From"))
	require.NoError(t, err)
	require.Equal(t, mail.Address{Name: "News Team", Address: "news@example.com"}, *from)
	to, err := mail.ParseAddress(h.Get("To"))
	require.NoError(t, err)
	require.Equal(t, mail.Address{Name: "John Doe", Address: "john@doe.email"}, *to)
	require.Equal(t, "<reply@example.com>", h.Get("Reply-To"))
	require.Empty(t, h.Get("Bcc"), "BCC is envelope only")
	require.Equal(t, "<dispatch-42-email@m.example.com>", h.Get("Message-Id"))
	require.Equal(t, "7", h.Get("X-Email-Id"))
	require.Equal(t, "c-Doe", h.Get("X-Campaign"))
	require.Equal(t, "sidecar", h.Get("X-Mailer-Tag"))
	require.Empty(t, h.Get("X-Injected"))
	require.Len(t, h["Subject"], 1)
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "Hello John from Mautic", subject)
	_, err = h.Date()
	require.NoError(t, err)

	unsub := "https://m.example.com/email/unsubscribe/" + testHash + "/john@doe.email/" + expectedHMAC("john@doe.email")
	require.Equal(t, "<"+unsub+">", h.Get("List-Unsubscribe"))
	require.Equal(t, "List-Unsubscribe=One-Click", h.Get("List-Unsubscribe-Post"))

	html := p.parts["text/html"]
	pixel := `<img height="1" width="1" src="https://m.example.com/email/` + testHash + `.gif" alt="" /></body>`
	require.Contains(t, html, pixel)
	require.Contains(t, html, "Hi John, zip 77008, country USA.")
	require.Contains(t, html, `<a href="`+unsub+`">unsubscribe</a>`)
	require.Contains(t, html, `<a href="https://m.example.com/email/view/`+testHash+`">view</a>`)
	require.Contains(t, html, `<a href="https://m.example.com/email/dnc/`+testHash+`/john@doe.email/`+expectedHMAC("john@doe.email")+`">dnc</a>`)
	require.Contains(t, html, `https://x.test/?e=john%40doe.email`)
	require.Contains(t, html, `<a href='`+unsub+`'>Unsubscribe</a> to no longer receive emails from us.`)
	require.Contains(t, html, "Best regards, News Team")
	require.Contains(t, html, "[Hello John from Mautic]", "{subject} matches case-insensitively")
	require.NotContains(t, html, "{")

	require.Equal(t, "Hi John! Unsubscribe: "+unsub, strings.TrimRight(p.parts["text/plain"], "\r\n"))

	require.Equal(t, "<dispatch-42-email@m.example.com>", rcpt.ProviderID)
	require.False(t, rcpt.SentAt.IsZero())
	require.Equal(t, "John", rcpt.Tokens["{contactfield=firstname}"])
	require.Equal(t, "77008", rcpt.Tokens["{contactfield=companyzip}"])
	require.Equal(t, "USA", rcpt.Tokens["{contactfield=country|USA}"])
	require.Equal(t, "john%40doe.email", rcpt.Tokens["%7Bcontactfield=email|true%7D"])
	require.Equal(t, unsub, rcpt.Tokens["{unsubscribe_url}"])
	require.Equal(t, "https://m.example.com/email/"+testHash+".gif", rcpt.Tokens["{tracking_pixel}"])
	require.Equal(t, "Hello John from Mautic", rcpt.Tokens["{subject}"])

	// Content problems are logged, without personal data.
	out := logs.String()
	require.Contains(t, out, "email content problem")
	require.NotContains(t, out, "john@doe.email")
	require.NotContains(t, out, "evil@example.com")

	// The same dispatch key gives the same Message-ID.
	rcpt2, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, rcpt.ProviderID, rcpt2.ProviderID)
	deliveries, _, _ = be.snapshot()
	require.Equal(t, "<dispatch-42-email@m.example.com>", parseMessage(t, deliveries[1].Data).header.Get("Message-Id"))
}

func TestSendHTMLOnlyAndDefaults(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), From: "Mautic <mautic@example.com>"})

	msg := testMessage()
	msg.Email = &channels.EmailContent{
		ID:      8,
		Subject: "Plain",
		HTML:    `<p>{unsubscribe_text}|{unsubscribe_url}|{webview_url}|{tracking_pixel}</p>`,
	}
	rcpt, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	deliveries, _, _ := be.snapshot()
	require.Len(t, deliveries, 1)
	require.Equal(t, "mautic@example.com", deliveries[0].From)
	p := parseMessage(t, deliveries[0].Data)
	from, err := mail.ParseAddress(p.header.Get("From"))
	require.NoError(t, err)
	require.Equal(t, "Mautic", from.Name)
	require.Empty(t, p.header.Get("List-Unsubscribe"), "no site url, no unsubscribe header")
	require.Empty(t, p.header.Get("List-Unsubscribe-Post"))
	require.Empty(t, p.header.Get("Reply-To"))
	require.Equal(t, "<dispatch-42-email@example.com>", p.header.Get("Message-Id"), "host of the from address")
	require.Len(t, p.parts, 1)
	html := strings.TrimRight(p.parts["text/html"], "\r\n")
	require.Equal(t, `<p>|||`+blankPixel+`</p><img height="1" width="1" src="`+blankPixel+`" alt="" />`, html)
	require.Equal(t, blankPixel, rcpt.Tokens["{tracking_pixel}"])
	require.Empty(t, rcpt.Tokens["{unsubscribe_url}"])
}

func TestSendClassification(t *testing.T) {
	rcptErr := func(code int, enh smtp.EnhancedCode, text string) map[string]*smtp.SMTPError {
		return map[string]*smtp.SMTPError{"john@doe.email": {Code: code, EnhancedCode: enh, Message: text}}
	}
	tests := []struct {
		name      string
		be        *backend
		to        string
		kind      channels.Kind
		errText   string
		delivered bool
		sessions  int
	}{
		{name: "accepted", be: &backend{}, delivered: true, sessions: 1},
		{
			name: "unknown user at rcpt", kind: channels.KindUnreachable, sessions: 1, errText: "550 5.1.1",
			be: &backend{rcptErr: rcptErr(550, smtp.EnhancedCode{5, 1, 1}, "<john@doe.email>: no such user")},
		},
		{
			name: "bare 550 at rcpt", kind: channels.KindUnreachable, sessions: 1,
			be: &backend{rcptErr: rcptErr(550, smtp.EnhancedCodeNotSet, "mailbox unavailable")},
		},
		{
			name: "relay denied at rcpt is not a bounce", kind: channels.KindPermanent, sessions: 1,
			be: &backend{rcptErr: rcptErr(554, smtp.EnhancedCode{5, 7, 1}, "Relay access denied")},
		},
		{
			name: "mailbox full at rcpt", kind: channels.KindPermanent, sessions: 1,
			be: &backend{rcptErr: rcptErr(552, smtp.EnhancedCode{5, 2, 2}, "mailbox full")},
		},
		{
			name: "greylisted at rcpt", kind: channels.KindTransient, sessions: 1, errText: "451",
			be: &backend{rcptErr: rcptErr(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, try later")},
		},
		{
			name: "sender refused", kind: channels.KindPermanent, sessions: 1,
			be: &backend{mailErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender denied"}},
		},
		{
			name: "mail from 451", kind: channels.KindTransient, sessions: 1,
			be: &backend{mailErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "local error"}},
		},
		{
			name: "data rejected 554", kind: channels.KindPermanent, sessions: 1, errText: "smtp data",
			be: &backend{dataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}},
		},
		{
			name: "data 451", kind: channels.KindTransient, sessions: 1,
			be: &backend{dataErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again"}},
		},
		{
			name: "spam after data", kind: channels.KindPermanent, sessions: 1, errText: "data end",
			be: &backend{dataEndErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "spam"}},
		},
		{
			name: "unknown user after data", kind: channels.KindUnreachable, sessions: 1,
			be: &backend{dataEndErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
		},
		{name: "malformed recipient", to: "john@@doe", kind: channels.KindUnreachable, be: &backend{}, sessions: 0},
		{name: "recipient with a name", to: "John <john@doe.email>", kind: channels.KindUnreachable, be: &backend{}, sessions: 0},
		{name: "header injection in recipient", to: "john@doe.email\r\nBcc: x@y.z", kind: channels.KindUnreachable, be: &backend{}, sessions: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := startServer(t, tc.be, plainOnly)
			s, logs := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
			msg := testMessage()
			if tc.to != "" {
				msg.To = tc.to
			}
			_, err := s.Send(context.Background(), msg)
			deliveries, sessions, _ := tc.be.snapshot()
			require.Equal(t, tc.sessions, sessions)
			if tc.delivered {
				require.NoError(t, err)
				require.Len(t, deliveries, 1)
				return
			}
			require.Error(t, err)
			require.Empty(t, deliveries)
			require.Equal(t, tc.kind, channels.KindOf(err), "err: %v", err)
			require.Equal(t, tc.kind != channels.KindTransient, errors.Is(err, channels.ErrPermanent))
			for _, part := range strings.Fields(tc.errText) {
				require.Contains(t, err.Error(), part)
			}
			require.NotContains(t, err.Error(), "john@doe.email", "no address in errors")
			require.NotContains(t, logs.String(), "john@doe.email")
			var te *textproto.Error
			if sessions > 0 {
				require.ErrorAs(t, err, &te)
			}
		})
	}
}

func TestSendAfterRejectionReusesConnection(t *testing.T) {
	be := &backend{rcptErr: map[string]*smtp.SMTPError{"gone@doe.email": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "gone"}}}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
	bad := testMessage()
	bad.To = "gone@doe.email"
	_, err := s.Send(context.Background(), bad)
	require.ErrorIs(t, err, channels.ErrUnreachable)
	_, err = s.Send(context.Background(), testMessage())
	require.NoError(t, err)
	deliveries, sessions, _ := be.snapshot()
	require.Len(t, deliveries, 1)
	require.Equal(t, 1, sessions, "a rejected recipient keeps the connection (RSET)")
}

func TestSendRefusedBCCStillDelivers(t *testing.T) {
	be := &backend{rcptErr: map[string]*smtp.SMTPError{"archive@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no"}}}
	addr := startServer(t, be, plainOnly)
	s, logs := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
	_, err := s.Send(context.Background(), testMessage())
	require.NoError(t, err)
	deliveries, _, _ := be.snapshot()
	require.Len(t, deliveries, 1)
	require.Equal(t, []string{"john@doe.email"}, deliveries[0].To)
	require.Contains(t, logs.String(), "bcc recipient refused")
}

func TestSendConnectionErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		s, _ := newSender(t, Config{URL: smtpURL("smtp", closedPort(t), "user", testPassword, "")})
		_, err := s.Send(context.Background(), testMessage())
		require.Error(t, err)
		require.Equal(t, channels.KindTransient, channels.KindOf(err))
		require.NotContains(t, err.Error(), testPassword)
	})
	t.Run("context already cancelled", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, be, plainOnly)
		s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Send(ctx, testMessage())
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, channels.KindTransient, channels.KindOf(err))
		_, sessions, _ := be.snapshot()
		require.Zero(t, sessions)
	})
	t.Run("send after close", func(t *testing.T) {
		be := &backend{}
		addr := startServer(t, be, plainOnly)
		s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
		require.NoError(t, s.Close())
		_, err := s.Send(context.Background(), testMessage())
		require.ErrorIs(t, err, errClosed)
		require.Equal(t, channels.KindTransient, channels.KindOf(err))
	})
}

func TestSendContextCancelledDuringData(t *testing.T) {
	be := &backend{inData: make(chan struct{}, 1), release: make(chan struct{})}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "")})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, testMessage())
		errc <- err
	}()
	<-be.inData // the server is in DATA and will not answer
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, channels.KindTransient, channels.KindOf(err))
}

// TestBadAddressFailsWithoutWaiting: with every connection of the pool
// busy, a send to a malformed address fails at once as Unreachable rather
// than waiting for a connection (and timing out as Transient).
func TestBadAddressFailsWithoutWaiting(t *testing.T) {
	be := &backend{inData: make(chan struct{}, 1), release: make(chan struct{})}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), PoolSize: 1, Timeout: 2 * time.Second})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Send(context.Background(), testMessage())
		errc <- err
	}()
	<-be.inData // the pool's one connection is busy in DATA
	bad := testMessage()
	bad.To = "not an address"
	_, err := s.Send(context.Background(), bad)
	require.Equal(t, channels.KindUnreachable, channels.KindOf(err), "err: %v", err)
	be.release <- struct{}{}
	require.NoError(t, <-errc)
}

func TestSendTimeout(t *testing.T) {
	be := &backend{inData: make(chan struct{}, 1), release: make(chan struct{})}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), Timeout: 300 * time.Millisecond})
	_, err := s.Send(context.Background(), testMessage())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, channels.KindTransient, channels.KindOf(err))
	require.Contains(t, err.Error(), "longer than 300ms")
}

func TestSendAuth(t *testing.T) {
	tests := []struct {
		name     string
		be       *backend
		mode     tlsMode
		user     string
		pass     string
		query    string
		kind     channels.Kind
		wantUser string
		ok       bool
	}{
		{name: "plain auth on a plain connection", be: &backend{user: "mautic", pass: testPassword}, user: "mautic", pass: testPassword, ok: true, wantUser: "mautic"},
		{name: "plain auth after starttls", be: &backend{user: "mautic", pass: testPassword}, mode: startTLS, query: "verify_peer=0", user: "mautic", pass: testPassword, ok: true, wantUser: "mautic"},
		{name: "wrong password", be: &backend{user: "mautic", pass: "other"}, user: "mautic", pass: testPassword, kind: channels.KindPermanent},
		{name: "credentials required but missing", be: &backend{user: "mautic", pass: testPassword}, kind: channels.KindPermanent},
		{name: "server without auth ignores credentials", be: &backend{}, user: "mautic", pass: testPassword, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := startServer(t, tc.be, tc.mode)
			s, logs := newSender(t, Config{URL: smtpURL("smtp", addr, tc.user, tc.pass, tc.query)})
			_, err := s.Send(context.Background(), testMessage())
			deliveries, _, _ := tc.be.snapshot()
			if tc.ok {
				require.NoError(t, err)
				require.Len(t, deliveries, 1)
				require.Equal(t, tc.wantUser, deliveries[0].User)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.kind, channels.KindOf(err), "err: %v", err)
			require.Empty(t, deliveries)
			require.NotContains(t, err.Error(), testPassword)
			require.NotContains(t, logs.String(), testPassword)
			require.Contains(t, logs.String(), `"level":"ERROR"`, "an operator must act")
		})
	}
}

func TestAuthFailureLeaksNoSecret(t *testing.T) {
	// The password is URL-encoded in SMTP_URL and must appear nowhere:
	// not in the error, the logs, Config.String or the slog value.
	pass := "p@ss:w/rd?" + testPassword
	be := &backend{user: "mautic", pass: "right"}
	addr := startServer(t, be, plainOnly)
	cfg := Config{URL: smtpURL("smtp", addr, "mautic", pass, ""), From: "m@example.com", SiteURL: testSiteURL, SecretKey: testSecret}
	s, logs := newSender(t, cfg)
	_, err := s.Send(context.Background(), testMessage())
	require.Error(t, err)
	require.Equal(t, channels.KindPermanent, channels.KindOf(err))
	_, _, _ = be.snapshot()
	be.mu.Lock()
	require.Equal(t, 1, be.authFails, "the credentials were presented")
	be.mu.Unlock()
	for _, out := range []string{err.Error(), fmt.Sprintf("%+v", err), logs.String(), cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%#v", cfg)} {
		require.NotContains(t, out, testPassword)
		require.NotContains(t, out, testSecret)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	require.NotContains(t, buf.String(), testPassword)
	require.NotContains(t, buf.String(), testSecret)
	require.Contains(t, buf.String(), "mautic:xxxxx@")
}

func TestSendTLS(t *testing.T) {
	tests := []struct {
		name   string
		mode   tlsMode
		scheme string
		query  string
		kind   channels.Kind
		tls    bool
		ok     bool
	}{
		{name: "starttls when offered", mode: startTLS, scheme: "smtp", query: "verify_peer=0", ok: true, tls: true},
		{name: "plain when not offered", mode: plainOnly, scheme: "smtp", ok: true},
		{name: "implicit tls", mode: implicitTLS, scheme: "smtps", query: "verify_peer=0", ok: true, tls: true},
		{name: "auto_tls=0 stays plain", mode: startTLS, scheme: "smtp", query: "auto_tls=0", ok: true},
		{name: "untrusted certificate", mode: startTLS, scheme: "smtp", kind: channels.KindTransient},
		{name: "untrusted certificate, implicit", mode: implicitTLS, scheme: "smtps", kind: channels.KindTransient},
		{name: "require_tls without starttls", mode: plainOnly, scheme: "smtp", query: "require_tls=1", kind: channels.KindPermanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend{}
			addr := startServer(t, be, tc.mode)
			s, _ := newSender(t, Config{URL: smtpURL(tc.scheme, addr, "", "", tc.query)})
			_, err := s.Send(context.Background(), testMessage())
			deliveries, _, _ := be.snapshot()
			if !tc.ok {
				require.Error(t, err)
				require.Equal(t, tc.kind, channels.KindOf(err), "err: %v", err)
				require.Empty(t, deliveries)
				return
			}
			require.NoError(t, err)
			require.Len(t, deliveries, 1)
			require.Equal(t, tc.tls, deliveries[0].TLS)
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, startTLS)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", "verify_peer=0"), PoolSize: 2})
	for i := range 20 {
		msg := testMessage()
		msg.Key = fmt.Sprintf("dispatch-%d-email", i)
		_, err := s.Send(context.Background(), msg)
		require.NoError(t, err)
	}
	deliveries, sessions, _ := be.snapshot()
	require.Len(t, deliveries, 20)
	require.Equal(t, 1, sessions, "sequential sends share one connection")

	// The server drops idle connections: the next send notices (NOOP)
	// and retries once on a fresh connection.
	be.closeConns()
	_, err := s.Send(context.Background(), testMessage())
	require.NoError(t, err)
	deliveries, sessions, _ = be.snapshot()
	require.Len(t, deliveries, 21)
	require.Equal(t, 2, sessions)
}

func TestConcurrentSends(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, plainOnly)
	const poolSize, sends = 3, 60
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), PoolSize: poolSize})
	var wg sync.WaitGroup
	errs := make(chan error, sends)
	ids := make(chan string, sends)
	for i := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := testMessage()
			msg.Key = fmt.Sprintf("dispatch-%d-email", i)
			rcpt, err := s.Send(context.Background(), msg)
			errs <- err
			ids <- rcpt.ProviderID
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	for id := range ids {
		require.False(t, seen[id])
		seen[id] = true
	}
	deliveries, sessions, maxActive := be.snapshot()
	require.Len(t, deliveries, sends)
	require.LessOrEqual(t, sessions, poolSize)
	require.LessOrEqual(t, maxActive, poolSize)
	for _, d := range deliveries {
		id := parseMessage(t, d.Data).header.Get("Message-Id")
		require.True(t, seen[id], id)
	}
}

// TestEveryPooledConnectionStale: after a quiet period the server has
// dropped every pooled connection; sends still go out, on fresh ones.
func TestEveryPooledConnectionStale(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, plainOnly)
	const poolSize = 3
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), PoolSize: poolSize})
	// Fill the pool with three connections.
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := testMessage()
			msg.Key = fmt.Sprintf("fill-%d-email", i)
			_, err := s.Send(context.Background(), msg)
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	be.closeConns()
	for i := range poolSize + 1 {
		msg := testMessage()
		msg.Key = fmt.Sprintf("after-%d-email", i)
		_, err := s.Send(context.Background(), msg)
		require.NoError(t, err, "send %d after the server dropped the pool", i)
	}
	deliveries, _, _ := be.snapshot()
	require.Len(t, deliveries, 12+poolSize+1)
}

// TestNoFromAddress: SMTP_FROM is optional; an email without its own from
// address then fails as permanent, without a connection.
func TestNoFromAddress(t *testing.T) {
	be := &backend{}
	addr := startServer(t, be, plainOnly)
	s, _ := newSender(t, Config{URL: smtpURL("smtp", addr, "", "", ""), From: " "})
	msg := testMessage()
	msg.Email.FromAddress = ""
	_, err := s.Send(context.Background(), msg)
	require.Error(t, err)
	require.Equal(t, channels.KindPermanent, channels.KindOf(err))
	require.Contains(t, err.Error(), "no from address")
	_, sessions, _ := be.snapshot()
	require.Zero(t, sessions)
	msg.Email.FromAddress = "shop@example.test"
	_, err = s.Send(context.Background(), msg)
	require.NoError(t, err, "the email's own from address is enough")
}

// BenchmarkSend is one email as the pipeline sends it: tokens rendered,
// the MIME message built, and the SMTP transaction (MAIL, RCPT, DATA) on a
// reused connection to an in-process server over loopback.
func BenchmarkSend(b *testing.B) {
	be := &backend{}
	addr := startServer(b, be, plainOnly)
	s, _ := newSender(b, Config{URL: smtpURL("smtp", addr, "", "", ""), SiteURL: testSiteURL, SecretKey: testSecret})
	msg := testMessage()
	msg.Email.BCC = ""
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
