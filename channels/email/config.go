package email

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the optional Config fields.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultPoolSize = 4

	// DefaultUnsubscribeText is Mautic's English default for the
	// {unsubscribe_text} token (EmailBundle messages.ini); |URL| is replaced
	// by the unsubscribe URL.
	DefaultUnsubscribeText = "<a href='|URL|'>Unsubscribe</a> to no longer receive emails from us."
	// DefaultWebviewText is Mautic's English default for the {webview_text}
	// token; |URL| is replaced by the web view URL.
	DefaultWebviewText = "<a href='|URL|'>Having trouble reading this email? Click here.</a>"
	// DefaultSignatureText is Mautic's English default signature for the
	// {signature} token; |FROM_NAME| is replaced by the sender's name.
	DefaultSignatureText = "Best regards, |FROM_NAME|"
)

// Config configures the SMTP sender.
type Config struct {
	// URL is SMTP_URL, Mautic's mailer_dsn syntax:
	// smtp://user:pass@host:port uses STARTTLS when the server offers it and
	// plain SMTP otherwise (as Symfony Mailer does; port 465 means implicit
	// TLS), smtps://... uses implicit TLS. Default ports: 25 and 465. User and
	// password are URL-decoded. Query options: verify_peer=0 skips the
	// certificate check (local test servers only), auto_tls=0 never uses
	// STARTTLS, require_tls=1 refuses servers without TLS, local_domain=name
	// sets the EHLO name. Other options are ignored, as Symfony does.
	URL string
	// From is SMTP_FROM, "addr" or "Name <addr>": the sender when the
	// emails row has no from_address (and the name when it has no
	// from_name).
	From string
	// SiteURL is Mautic's site_url (MAUTIC_SITE_URL), the base of the
	// unsubscribe, web view and tracking pixel URLs. When empty those tokens
	// render as "", the tracking pixel is a blank data: GIF and no
	// List-Unsubscribe header is sent.
	SiteURL string
	// SecretKey is Mautic's secret_key (MAUTIC_SECRET_KEY), which signs the
	// unsubscribe URL. Required with SiteURL.
	SecretKey string
	// DisableTrackingPixel turns off Mautic's mailer_append_tracking_pixel
	// (on by default): the pixel image inserted before </body>.
	DisableTrackingPixel bool
	// Timeout bounds one send: waiting for a connection, dialing and the
	// SMTP transaction. 0 means DefaultTimeout.
	Timeout time.Duration
	// PoolSize is the number of SMTP connections kept open and reused; it
	// also bounds concurrent sends. 0 means DefaultPoolSize.
	PoolSize int
	// UnsubscribeText, WebviewText and SignatureText are Mautic's
	// unsubscribe_text, webview_text and default_signature_text; empty means
	// Mautic's English defaults.
	UnsubscribeText string
	WebviewText     string
	SignatureText   string
	// DateFormat and TimeFormat are Mautic's date_format_dateonly and
	// date_format_timeonly (PHP date formats) for |date, |time and
	// |datetime contact tokens; empty means Mautic's defaults.
	DateFormat string
	TimeFormat string
}

// String returns the configuration with the SMTP password and the secret
// key masked, safe to log.
func (c Config) String() string {
	secret := ""
	if c.SecretKey != "" {
		secret = "xxxxx"
	}
	return fmt.Sprintf("email.Config{URL:%q From:%q SiteURL:%q SecretKey:%q DisableTrackingPixel:%t Timeout:%s PoolSize:%d}",
		redactURL(c.URL), c.From, c.SiteURL, secret, c.DisableTrackingPixel, c.Timeout, c.PoolSize)
}

// GoString masks the secrets in %#v output too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(c.URL)),
		slog.String("from", c.From),
		slog.String("site_url", c.SiteURL),
		slog.Bool("secret_key_set", c.SecretKey != ""),
		slog.Bool("tracking_pixel", !c.DisableTrackingPixel),
		slog.Duration("timeout", c.Timeout),
		slog.Int("pool_size", c.PoolSize),
	)
}

// redactURL masks the password of an SMTP URL. A URL that does not parse is
// hidden entirely, since it may hold a password in any place.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Redacted()
}

// Validate reports the first problem in c. Its errors never contain the
// SMTP password or the secret key.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// server is the parsed SMTP_URL.
type server struct {
	host        string
	port        int
	implicitTLS bool
	autoTLS     bool // STARTTLS when offered
	requireTLS  bool
	verifyPeer  bool
	helo        string
	user, pass  string
}

// resolved is a validated Config with its defaults applied.
type resolved struct {
	Config
	server   server
	from     *mail.Address
	siteBase string // scheme://host[:port][/path], no trailing slash; "" without SiteURL
	siteHost string
}

func (c Config) resolve() (resolved, error) {
	r := resolved{Config: c}
	var err error
	if r.server, err = parseServer(c.URL); err != nil {
		return r, fmt.Errorf("smtp url: %w", err)
	}
	// From is the default sender: optional, since most emails rows carry
	// their own from_address; an email without one then fails (Permanent).
	r.from = &mail.Address{}
	if strings.TrimSpace(c.From) != "" {
		if r.from, err = parseAddress(c.From); err != nil {
			return r, fmt.Errorf("from: %w", err)
		}
	}
	if c.SiteURL != "" {
		if r.siteBase, r.siteHost, err = siteBase(c.SiteURL); err != nil {
			return r, fmt.Errorf("site url: %w", err)
		}
		if c.SecretKey == "" {
			return r, errors.New("secret key: required with a site url (it signs unsubscribe links)")
		}
	}
	if c.Timeout < 0 {
		return r, errors.New("timeout: must not be negative")
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if c.PoolSize < 0 {
		return r, errors.New("pool size: must not be negative")
	}
	if r.PoolSize == 0 {
		r.PoolSize = DefaultPoolSize
	}
	if r.UnsubscribeText == "" {
		r.UnsubscribeText = DefaultUnsubscribeText
	}
	if r.WebviewText == "" {
		r.WebviewText = DefaultWebviewText
	}
	if r.SignatureText == "" {
		r.SignatureText = DefaultSignatureText
	}
	return r, nil
}

func parseServer(raw string) (server, error) {
	s := server{autoTLS: true, verifyPeer: true}
	if raw == "" {
		return s, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only
		// the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			return s, fmt.Errorf("invalid: %w", ue.Err)
		}
		return s, errors.New("invalid")
	}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicitTLS = true
	default:
		return s, fmt.Errorf("unsupported scheme %q (want smtp or smtps)", u.Scheme)
	}
	s.host = u.Hostname()
	if s.host == "" {
		return s, errors.New("missing host")
	}
	if u.Path != "" && u.Path != "/" {
		return s, errors.New("unexpected path")
	}
	s.port = 25
	if s.implicitTLS {
		s.port = 465
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("invalid port %q", p)
		}
		s.port = n
	}
	if s.port == 465 {
		// Symfony's EsmtpTransport: port 465 always means implicit TLS.
		s.implicitTLS = true
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	q := u.Query()
	if v, ok, err := boolOption(q, "verify_peer"); err != nil {
		return s, err
	} else if ok {
		s.verifyPeer = v
	}
	if v, ok, err := boolOption(q, "auto_tls"); err != nil {
		return s, err
	} else if ok {
		s.autoTLS = v
	}
	if v, ok, err := boolOption(q, "require_tls"); err != nil {
		return s, err
	} else if ok {
		s.requireTLS = v
	}
	if s.requireTLS && !s.autoTLS && !s.implicitTLS {
		return s, errors.New("require_tls needs TLS: drop auto_tls=0 or use smtps")
	}
	if v := q.Get("local_domain"); v != "" {
		if strings.ContainsAny(v, " \r\n\t") {
			return s, errors.New("invalid local_domain")
		}
		s.helo = v
	}
	return s, nil
}

func boolOption(q url.Values, key string) (value, ok bool, err error) {
	if !q.Has(key) {
		return false, false, nil
	}
	switch strings.ToLower(q.Get(key)) {
	case "1", "true", "yes", "on":
		return true, true, nil
	case "0", "false", "no", "off", "":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s: want 0 or 1", key)
}

// siteBase returns the URL prefix Mautic's router puts before its routes:
// scheme, host, port and the path of site_url, without index.php and the
// trailing slash (mautic-reference.md 7.2).
func siteBase(raw string) (base, host string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", errors.New("invalid")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", errors.New("must be an absolute http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", "", errors.New("missing host")
	}
	if u.User != nil {
		return "", "", errors.New("must not contain credentials")
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	path = strings.TrimSuffix(path, "/index.php")
	path = strings.TrimRight(path, "/")
	return u.Scheme + "://" + u.Host + path, u.Hostname(), nil
}

// parseAddress parses "addr" or "Name <addr>" (RFC 5322).
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("invalid address")
	}
	s = strings.TrimSpace(s)
	if plainAddress(s) {
		// What net/mail returns for it, without its parser (a contact's
		// address is parsed for every email).
		return &mail.Address{Address: s}, nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, errors.New("invalid address")
	}
	return a, nil
}

// plainAddress reports whether s is local@domain with both parts ASCII
// dot-atoms (RFC 5322 3.2.3), the form nearly every address has.
func plainAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>[]:;@\,"`, c) >= 0:
			return false
		}
	}
	return true
}

// hostPort is the dial address of the server.
func (s server) hostPort() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }
