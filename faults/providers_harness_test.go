package faults

import (
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mautic-mm/sidecar/channels/sandbox"
)

// siteURL and secretKey make the email sender build Mautic's tracking and
// unsubscribe URLs, as in production.
const (
	siteURL   = "https://mautic.example.test"
	secretKey = "5f1e0c2d3b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// providers are the stand-ins the sidecar sends to, in this process: the
// sandbox's HTTP providers (Twilio, OneSignal, X, the "hook" webhook
// channel), a second sandbox for the "fallback" webhook channel that is
// never faulted, and the sandbox SMTP server behind smtpFront, which can
// break SMTP connections the ways a mail server fails.
type providers struct {
	http     *sandbox.Server
	fallback *sandbox.Server
	smtp     *sandbox.SMTPServer
	front    *smtpFront
}

func startProviders(t testing.TB) *providers {
	t.Helper()
	h, err := sandbox.Start(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	fb, err := sandbox.Start(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fb.Close)
	m, err := sandbox.StartSMTP(sandbox.SMTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f := startSMTPFront(t, m.Addr())
	return &providers{http: h, fallback: fb, smtp: m, front: f}
}

// env configures every sender of the sidecar for the stand-ins.
func (p *providers) env() map[string]string {
	tw, osg, x := p.http.TwilioConfig(), p.http.OneSignalConfig(), p.http.XConfig()
	return map[string]string{
		"MAUTIC_SITE_URL":              siteURL,
		"MAUTIC_SECRET_KEY":            secretKey,
		"SMTP_URL":                     "smtp://" + p.front.addr(),
		"SMTP_FROM":                    "news@example.test",
		"TWILIO_ACCOUNT_SID":           tw.AccountSID,
		"TWILIO_AUTH_TOKEN":            tw.AuthToken,
		"TWILIO_FROM":                  tw.From,
		"TWILIO_API_BASE":              tw.BaseURL,
		"ONESIGNAL_APP_ID":             osg.AppID,
		"ONESIGNAL_REST_API_KEY":       osg.RESTAPIKey,
		"ONESIGNAL_API_BASE":           osg.BaseURL,
		"X_CONSUMER_KEY":               x.ConsumerKey,
		"X_CONSUMER_SECRET":            x.ConsumerSecret,
		"X_ACCESS_TOKEN":               x.AccessToken,
		"X_ACCESS_SECRET":              x.AccessSecret,
		"X_API_BASE":                   x.BaseURL,
		"CHANNEL_HOOK_WEBHOOK_URL":     p.http.WebhookURL("hook"),
		"CHANNEL_FALLBACK_WEBHOOK_URL": p.fallback.WebhookURL("fallback"),
	}
}

// httpProvider maps a channel to its sandbox provider.
var httpProvider = map[string]sandbox.Provider{"sms": sandbox.Twilio, "notification": sandbox.OneSignal, "tweet": sandbox.X, "hook": sandbox.Webhook}

// deliveries counts, per channel and contact, the messages the stand-ins
// accepted for delivery. repeats counts OneSignal requests that repeated an
// idempotency key: the provider answered them without delivering again.
type deliveries struct {
	by      map[string]map[int64]int
	repeats int
	keys    map[string]map[int64][]string // email: Message-IDs per contact
}

var msgIDRe = regexp.MustCompile(`sidecar-d(\d+)-email`)

func (p *providers) deliveries() deliveries {
	d := deliveries{by: map[string]map[int64]int{}, keys: map[string]map[int64][]string{"email": {}}}
	add := func(ch string, contact int64) {
		if d.by[ch] == nil {
			d.by[ch] = map[int64]int{}
		}
		d.by[ch][contact]++
	}
	for _, m := range p.smtp.Messages() {
		if len(m.To) == 0 {
			continue
		}
		c := contactOf("email", m.To[0])
		add("email", c)
		if msg, err := m.Message(); err == nil {
			d.keys["email"][c] = append(d.keys["email"][c], msgIDRe.FindString(msg.Header.Get("Message-Id")))
		}
	}
	for ch, prov := range httpProvider {
		for _, r := range p.http.Requests(prov) {
			if r.Duplicate {
				d.repeats++
			}
			if !r.Delivered || len(r.Addresses) == 0 {
				continue
			}
			if prov == sandbox.Webhook && !strings.HasSuffix(r.Path, "/"+ch) {
				continue
			}
			add(ch, contactOf(ch, r.Addresses[0]))
		}
	}
	for _, r := range p.fallback.Delivered(sandbox.Webhook) {
		if len(r.Addresses) > 0 {
			add("fallback", contactOf("fallback", r.Addresses[0]))
		}
	}
	return d
}

// delivered counts the deliveries so far, cheaply (for polling).
func (p *providers) delivered() int {
	return p.smtp.Count() + p.http.DeliveredCount("") + p.fallback.DeliveredCount("")
}

// total is the number of deliveries on every channel.
func (d deliveries) total() int {
	n := 0
	for _, m := range d.by {
		for _, c := range m {
			n += c
		}
	}
	return n
}

// count returns the deliveries to contact on channel.
func (d deliveries) count(channel string, contact int64) int { return d.by[channel][contact] }

// calls counts the requests provider p received (delivered or not).
func (p *providers) calls(channel string) int {
	switch channel {
	case "email":
		return p.front.connections()
	case "fallback":
		return p.fallback.Count(sandbox.Webhook)
	}
	return p.http.Count(httpProvider[channel])
}

// smtpFault is how smtpFront treats a new SMTP connection.
type smtpFault int

const (
	smtpPass     smtpFault = iota // proxy to the sandbox SMTP server
	smtpTempFail                  // 421 greeting: a temporary failure (SMTP's 5xx-of-HTTP)
	smtpBusy                      // 421 "too many connections" (SMTP has no Retry-After)
	smtpHang                      // accept and never greet: the client times out
	smtpReset                     // accept and reset the connection
	smtpGarbage                   // answer an HTML error page instead of a greeting
	smtpTruncate                  // a greeting cut short, then close
	smtpPermFail                  // 554 greeting: a permanent refusal
)

// smtpFront sits between the sidecar and the sandbox SMTP server and fails
// connections as set. Changing the fault closes every open connection, so
// the email sender's pooled connections meet the new behaviour too.
type smtpFront struct {
	ln      net.Listener
	backend string

	mu    sync.Mutex
	fault smtpFault
	open  map[net.Conn]bool
	count int
}

func startSMTPFront(t testing.TB, backend string) *smtpFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &smtpFront{ln: ln, backend: backend, open: map[net.Conn]bool{}}
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.set(smtpPass)
	})
	return f
}

func (f *smtpFront) addr() string { return f.ln.Addr().String() }

// set changes the fault and closes the connections open now.
func (f *smtpFront) set(fault smtpFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
	for c := range f.open {
		c.Close()
	}
}

// connections counts the connections accepted so far.
func (f *smtpFront) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

func (f *smtpFront) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.count++
		fault := f.fault
		f.open[c] = true
		f.mu.Unlock()
		go func() {
			defer func() {
				f.mu.Lock()
				delete(f.open, c)
				f.mu.Unlock()
				c.Close()
			}()
			f.handle(c, fault)
		}()
	}
}

func (f *smtpFront) handle(c net.Conn, fault smtpFault) {
	switch fault {
	case smtpPass:
		b, err := net.Dial("tcp", f.backend)
		if err != nil {
			return
		}
		defer b.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
		<-done
	case smtpTempFail:
		_, _ = io.WriteString(c, "421 4.3.0 sandbox: temporary local problem, try again later\r\n")
	case smtpBusy:
		_, _ = io.WriteString(c, "421 4.7.0 sandbox: too many connections, slow down\r\n")
	case smtpHang:
		_, _ = io.Copy(io.Discard, c) // until the client gives up or the fault changes
	case smtpReset:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	case smtpGarbage:
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html><body>bad gateway</body></html>\r\n")
	case smtpTruncate:
		_, _ = io.WriteString(c, "220 sandbox.localhost ESMT")
	case smtpPermFail:
		_, _ = io.WriteString(c, "554 5.3.2 sandbox: this server does not accept mail\r\n")
	}
}
