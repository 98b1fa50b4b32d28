// Package sandbox provides local stand-ins for the providers the senders
// talk to, for the demo and for end-to-end and fault tests. It is a
// sandbox: it delivers nothing, it only records what it receives and
// answers the way the real provider would, and it listens on the loopback
// interface (127.0.0.1) only.
//
// Server imitates, on one HTTP listener, Twilio's Messages endpoint,
// OneSignal's notifications endpoint, X's POST /2/tweets and a generic
// webhook receiver. It checks credentials as the provider does (Basic auth
// for Twilio, the REST API key for OneSignal, a full OAuth 1.0a signature
// check for X, the X-Sidecar-Signature for webhooks with a secret), records
// every request, and can be told to answer differently per address (a
// Twilio number that answers 21211 or 21610, a OneSignal player that is not
// subscribed) or per provider (500, 429 with Retry-After, a slow answer, a
// garbage or truncated body, a reset connection). When asked to, the Twilio
// stand-in also posts signed status callbacks ("sent", then "delivered" or a
// configured failure) to the StatusCallback URL of each accepted message;
// those posts go to the URL the sender gave, normally the sidecar on
// loopback.
//
// SMTPServer is an in-process SMTP server that accepts and records mail,
// optionally refusing given recipients at RCPT with 550.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/push"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/channels/tweet"
	"github.com/mautic-mm/sidecar/channels/webhook"
)

// Provider names one of the stand-ins.
type Provider string

// The stand-ins.
const (
	Twilio    Provider = "twilio"
	OneSignal Provider = "onesignal"
	X         Provider = "x"
	Webhook   Provider = "webhook"
)

// Twilio error codes the sandbox is commonly told to answer.
const (
	TwilioInvalidNumber = 21211 // invalid 'To' number
	TwilioUnsubscribed  = 21610 // the number replied STOP
	TwilioNotMobile     = 21614 // 'To' is not a mobile number
)

// Options are the credentials the stand-ins accept. Empty fields get
// sandbox values (see Server.Options); they are fake and only ever valid
// against the sandbox.
type Options struct {
	TwilioAccountSID string
	TwilioAuthToken  string

	OneSignalAppID   string
	OneSignalRESTKey string

	XConsumerKey    string
	XConsumerSecret string
	XAccessToken    string
	XAccessSecret   string

	// WebhookSecrets maps a custom channel to the secret its deliveries must
	// be signed with. A channel without a secret accepts unsigned posts.
	WebhookSecrets map[string]string

	// TwilioStatusCallbacks makes the Twilio stand-in post status callbacks,
	// signed with X-Twilio-Signature, to a message's StatusCallback URL
	// after accepting it: "sent", then "delivered" (or the address
	// behaviour's DeliveryStatus and DeliveryErrorCode). See Callbacks.
	TwilioStatusCallbacks bool
	// CallbackClient posts the status callbacks (default: a client with a
	// 10 s timeout).
	CallbackClient *http.Client

	// CountOnly keeps per-provider counts instead of the requests
	// themselves, so a load test with millions of sends runs in constant
	// memory: Count, DeliveredCount and WaitFor work, Requests and Delivered
	// return nothing, and status callbacks are not kept (Callbacks returns
	// nothing). OneSignal idempotency keys are still remembered.
	CountOnly bool
}

func (o Options) withDefaults() Options {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&o.TwilioAccountSID, "AC5a2db0c0ffee5a2db0c0ffee5a2db0c0")
	def(&o.TwilioAuthToken, "sandbox-twilio-auth-token")
	def(&o.OneSignalAppID, "0b5e5a2d-0000-4000-8000-5a2db0c0ffee")
	def(&o.OneSignalRESTKey, "sandbox-onesignal-rest-key")
	def(&o.XConsumerKey, "sandbox-x-consumer-key")
	def(&o.XConsumerSecret, "sandbox-x-consumer-secret")
	def(&o.XAccessToken, "sandbox-x-access-token")
	def(&o.XAccessSecret, "sandbox-x-access-secret")
	secrets := make(map[string]string, len(o.WebhookSecrets))
	for k, v := range o.WebhookSecrets {
		secrets[k] = v
	}
	o.WebhookSecrets = secrets
	return o
}

// Behavior is an answer the sandbox gives instead of its normal one. Set
// it per address with SetAddress or for every request to a provider with
// SetFault. Fields combine: Delay first, then Reset, Truncate, Garbage or
// Status; a Behavior with only Delay set delays the normal answer.
type Behavior struct {
	// Status is the HTTP status to answer. 0 means the provider's normal
	// status, or 400 when Code is set.
	Status int
	// Code is a Twilio error code (e.g. TwilioInvalidNumber).
	Code int
	// Message is the error message put in the provider-shaped error body.
	Message string
	// Body replaces the provider-shaped body.
	Body string
	// RetryAfter is sent as the Retry-After header.
	RetryAfter string
	// NotSubscribed makes a OneSignal player id not subscribed: it is
	// reported in invalid_player_ids, and a request whose every id is not
	// subscribed creates no notification.
	NotSubscribed bool
	// Delay holds the answer back this long, or until the client gives up.
	Delay time.Duration
	// Garbage answers Status (default 200) with an HTML body.
	Garbage bool
	// Truncate answers a body cut short: Content-Length larger than the body.
	Truncate bool
	// Reset closes the connection without answering (TCP reset).
	Reset bool
	// DeliveryStatus and DeliveryErrorCode set the final status callback
	// of an accepted Twilio message (e.g. "undelivered" and 30005), when
	// Options.TwilioStatusCallbacks is on.
	DeliveryStatus    string
	DeliveryErrorCode int
	// Times limits the behaviour to the next Times requests; 0 means until
	// Clear.
	Times int
}

// Request is one recorded request and what the sandbox answered.
type Request struct {
	Provider Provider
	Method   string
	Path     string
	Query    url.Values
	Header   http.Header
	Body     []byte
	// Addresses are the recipients the request names: Twilio's To, the
	// OneSignal player ids, the handle an X post mentions, the webhook
	// payload's contact id.
	Addresses []string
	// Status is the HTTP status answered; 0 when the connection was reset,
	// cut short or abandoned by the client.
	Status int
	// Response is the body answered.
	Response []byte
	// Delivered is set when the answer accepted the message for delivery
	// (not an error, not a OneSignal repeat, not a OneSignal answer that
	// created no notification).
	Delivered bool
	// Duplicate is set when OneSignal's idempotency_key was seen before:
	// the answer repeats the first one and nothing new is delivered.
	Duplicate bool
	At        time.Time
}

// Form parses the body as a form (Twilio requests).
func (r Request) Form() url.Values {
	v, _ := url.ParseQuery(string(r.Body))
	return v
}

// Server is the HTTP stand-in. Create it with Start; it is safe for
// concurrent use.
type Server struct {
	opts     Options
	listener net.Listener
	srv      *http.Server
	url      string

	mu        sync.Mutex
	requests  []Request
	counts    map[Provider]int // requests received, also in CountOnly mode
	delivered map[Provider]int // of which Delivered
	changed   changes          // every recorded request and callback
	faults    map[Provider]*Behavior
	addresses map[Provider]map[string]*Behavior
	seq       int
	idem      map[string][]byte // OneSignal idempotency_key → first answer
	posts     map[string]bool   // X texts already posted
	nonces    map[string]bool   // X OAuth nonces already used
	callbacks []Callback
	// callbackCount counts posted callbacks, also in CountOnly mode.
	callbackCount int

	ctx    context.Context // cancelled by Close; ends callback goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 (a free port) and serves the stand-ins until
// Close.
func Start(opts Options) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctx:       ctx,
		cancel:    cancel,
		opts:      opts.withDefaults(),
		listener:  l,
		url:       "http://" + l.Addr().String(),
		changed:   newChanges(),
		counts:    map[Provider]int{},
		delivered: map[Provider]int{},
		faults:    map[Provider]*Behavior{},
		addresses: map[Provider]map[string]*Behavior{},
		idem:      map[string][]byte{},
		posts:     map[string]bool{},
		nonces:    map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.twilio)
	mux.HandleFunc("POST /api/v1/notifications", s.onesignal)
	mux.HandleFunc("POST /2/tweets", s.x)
	mux.HandleFunc("POST /webhook/{channel}", s.webhook)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// URL is the base URL of every stand-in (http://127.0.0.1:port): the value
// for TWILIO_API_BASE, ONESIGNAL_API_BASE and X_API_BASE.
func (s *Server) URL() string { return s.url }

// WebhookURL is the receiver URL for a custom channel
// (CHANNEL_<KEY>_WEBHOOK_URL).
func (s *Server) WebhookURL(channel string) string {
	return s.url + "/webhook/" + url.PathEscape(channel)
}

// Options returns the credentials in force, defaults included.
func (s *Server) Options() Options { return s.opts }

// TwilioConfig returns an sms.Config for this sandbox, sending From a
// sandbox number.
func (s *Server) TwilioConfig() sms.Config {
	return sms.Config{AccountSID: s.opts.TwilioAccountSID, AuthToken: s.opts.TwilioAuthToken, From: "+15005550006", BaseURL: s.url}
}

// OneSignalConfig returns a push.Config for this sandbox.
func (s *Server) OneSignalConfig() push.Config {
	return push.Config{AppID: s.opts.OneSignalAppID, RESTAPIKey: s.opts.OneSignalRESTKey, BaseURL: s.url}
}

// XConfig returns a tweet.Config for this sandbox.
func (s *Server) XConfig() tweet.Config {
	return tweet.Config{
		ConsumerKey: s.opts.XConsumerKey, ConsumerSecret: s.opts.XConsumerSecret,
		AccessToken: s.opts.XAccessToken, AccessSecret: s.opts.XAccessSecret, BaseURL: s.url,
	}
}

// WebhookConfig returns a webhook.Config delivering channel to this sandbox,
// with the channel's secret when one is configured.
func (s *Server) WebhookConfig(channel channels.Name) webhook.Config {
	return webhook.Config{Channel: channel, URL: s.WebhookURL(string(channel)), Secret: s.opts.WebhookSecrets[string(channel)]}
}

// Close stops the server, closes open connections (releasing delayed
// answers) and waits for pending status callbacks to give up.
func (s *Server) Close() {
	s.cancel()
	_ = s.srv.Close()
	s.wg.Wait()
}

// SetAddress makes requests to p naming address (a Twilio To number in
// E.164, a OneSignal player id, an X handle without @ in lower case, a
// webhook contact id) answer as b says. Address behaviours apply after the
// credentials and the request shape were checked.
func (s *Server) SetAddress(p Provider, address string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addresses[p] == nil {
		s.addresses[p] = map[string]*Behavior{}
	}
	s.addresses[p][address] = &b
}

// SetFault makes every request to p answer as b says, before any check (an
// outage in front of the provider). p "" applies to every provider.
func (s *Server) SetFault(p Provider, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[p] = &b
}

// Clear removes every address behaviour and fault.
func (s *Server) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[Provider]*Behavior{}
	s.addresses = map[Provider]map[string]*Behavior{}
}

// Reset clears the behaviours and forgets the recorded requests, the
// OneSignal idempotency keys and the X posts.
func (s *Server) Reset() {
	s.Clear()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.counts = map[Provider]int{}
	s.delivered = map[Provider]int{}
	s.callbacks = nil
	s.callbackCount = 0
	s.idem = map[string][]byte{}
	s.posts = map[string]bool{}
	s.nonces = map[string]bool{}
}

// Requests returns the recorded requests to p, in arrival order; p ""
// returns all.
func (s *Server) Requests(p Provider) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if p == "" || r.Provider == p {
			out = append(out, r)
		}
	}
	return out
}

// Count returns how many requests p received; p "" counts all.
func (s *Server) Count(p Provider) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(s.counts, p)
}

// DeliveredCount returns how many requests to p (p "": all) the sandbox
// accepted for delivery (Request.Delivered). Unlike Delivered it also works
// in CountOnly mode.
func (s *Server) DeliveredCount(p Provider) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(s.delivered, p)
}

func (s *Server) countLocked(m map[Provider]int, p Provider) int {
	if p != "" {
		return m[p]
	}
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// Delivered returns the requests to p (p "": all) whose message the
// sandbox accepted for delivery (Request.Delivered).
func (s *Server) Delivered(p Provider) []Request {
	var out []Request
	for _, r := range s.Requests(p) {
		if r.Delivered {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor blocks until p received at least n requests (p "": in all), or
// ctx is done.
func (s *Server) WaitFor(ctx context.Context, p Provider, n int) error {
	count, err := s.changed.waitFor(ctx, &s.mu, n, func() int { return s.countLocked(s.counts, p) })
	if err != nil {
		return fmt.Errorf("sandbox: %d of %d requests to %q: %w", count, n, p, err)
	}
	return nil
}

func (s *Server) record(r Request) {
	r.At = time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.Provider]++
	if r.Delivered {
		s.delivered[r.Provider]++
	}
	if !s.opts.CountOnly {
		s.requests = append(s.requests, r)
	}
	s.changed.notify()
}

// take returns the behaviour for (p, address) or the fault for p, using up
// one of its Times. address "" looks up the fault.
func (s *Server) take(p Provider, address string) *Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	if address == "" {
		for _, key := range []Provider{p, ""} {
			if b := s.faults[key]; b != nil {
				return use(b, func() { delete(s.faults, key) })
			}
		}
		return nil
	}
	if b := s.addresses[p][address]; b != nil {
		return use(b, func() { delete(s.addresses[p], address) })
	}
	return nil
}

func use(b *Behavior, drop func()) *Behavior {
	c := *b
	if b.Times > 0 {
		b.Times--
		if b.Times == 0 {
			drop()
		}
	}
	return &c
}

// exchange is one request being answered: it records what was answered.
type exchange struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	rec Request
}

func (s *Server) begin(p Provider, w http.ResponseWriter, r *http.Request) *exchange {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	return &exchange{s: s, w: w, r: r, rec: Request{
		Provider: p, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
		Header: r.Header.Clone(), Body: body,
	}}
}

// reply answers status with a JSON (or other) body and records it.
func (e *exchange) reply(status int, contentType string, body []byte, header http.Header) {
	for k, vs := range header {
		for _, v := range vs {
			e.w.Header().Add(k, v)
		}
	}
	e.w.Header().Set("Content-Type", contentType)
	e.w.WriteHeader(status)
	_, _ = e.w.Write(body)
	e.rec.Status, e.rec.Response = status, body
	e.s.record(e.rec)
}

// behave applies b. It returns true when the request was answered (or
// abandoned) and the handler must stop; false when the normal answer should
// follow (a pure delay). errBody builds the provider-shaped error body.
func (e *exchange) behave(b *Behavior, okStatus int, errBody func(status int, b *Behavior) []byte) bool {
	if b == nil {
		return false
	}
	if b.Delay > 0 {
		t := time.NewTimer(b.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-e.r.Context().Done():
			e.s.record(e.rec) // the client gave up: status 0
			return true
		}
	}
	status := b.Status
	if status == 0 && b.Code != 0 {
		status = http.StatusBadRequest
	}
	switch {
	case b.Reset:
		e.hijack(func(c net.Conn, _ io.Writer) {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		})
		return true
	case b.Truncate:
		if status == 0 {
			status = okStatus
		}
		e.hijack(func(_ net.Conn, w io.Writer) {
			partial := `{"id":"partial`
			_, _ = fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				status, http.StatusText(status), len(partial)+64, partial)
		})
		return true
	case b.Garbage:
		if status == 0 {
			status = okStatus
		}
		e.reply(status, "text/html", []byte("<html><body>sandbox: garbage answer</body></html>"), retryHeader(b))
		return true
	case status != 0:
		body := []byte(b.Body)
		if b.Body == "" {
			body = errBody(status, b)
		}
		e.reply(status, "application/json", body, retryHeader(b))
		return true
	}
	return false
}

func (e *exchange) hijack(fn func(net.Conn, io.Writer)) {
	e.s.record(e.rec)
	hj, ok := e.w.(http.Hijacker)
	if !ok {
		return
	}
	c, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	fn(c, buf)
	_ = buf.Flush()
	_ = c.Close()
}

func retryHeader(b *Behavior) http.Header {
	if b.RetryAfter == "" {
		return nil
	}
	return http.Header{"Retry-After": {b.RetryAfter}}
}

// changes wakes the waiters of a recorder at every recorded event. The
// recorder's mutex guards it.
type changes struct{ ch chan struct{} }

func newChanges() changes { return changes{ch: make(chan struct{})} }

// notify wakes every waiter; call it with the recorder's mutex held.
func (c *changes) notify() {
	close(c.ch)
	c.ch = make(chan struct{})
}

// waitFor blocks until count, read under mu, reaches n or ctx is done, and
// returns the last count.
func (c *changes) waitFor(ctx context.Context, mu *sync.Mutex, n int, count func() int) (int, error) {
	for {
		mu.Lock()
		got, ch := count(), c.ch
		mu.Unlock()
		if got >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}
