// Package channels is the shared vocabulary of the senders: the message a
// sender delivers, the receipt it returns, the error kinds that tell the
// dispatcher what to do next, and the registry that main fills.
//
// Senders live in one sub-package each (email, sms, push, tweet, webhook)
// and import only this package.
package channels

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Name is a channel key, equal to Mautic's keys in message_channels.channel,
// lead_frequencyrules.channel and lead_donotcontact.channel.
type Name string

// The channels Mautic registers for marketing messages (mautic-reference.md 2.3).
// Any other key is a custom channel served by the webhook sender.
const (
	Email              Name = "email"
	SMS                Name = "sms"
	Tweet              Name = "tweet"
	Notification       Name = "notification"
	MobileNotification Name = "mobile_notification"
)

// Contact is what a sender needs to know about the recipient.
type Contact struct {
	ID int64
	// Fields holds every contact field by alias, as Mautic reads them
	// (strings; nil for SQL NULL).
	Fields map[string]*string
	// Company holds the primary company's fields (nil when the contact has
	// no primary company).
	Company map[string]*string
}

// Field returns the contact field alias as a string, "" when missing or NULL.
func (c Contact) Field(alias string) string {
	if v := c.Fields[alias]; v != nil {
		return *v
	}
	return ""
}

// EmailContent is an emails row as the email sender needs it.
type EmailContent struct {
	ID            int64
	Name          string
	Subject       string
	HTML          string // emails.custom_html
	Text          string // emails.plain_text; empty means no text part
	PreheaderText string
	FromAddress   string
	FromName      string
	ReplyTo       string
	BCC           string            // comma-separated list
	Headers       map[string]string // emails.headers, already HTML-entity-decoded
}

// SMSContent is an sms_messages row.
type SMSContent struct {
	ID      int64
	Name    string
	Message string
}

// PushContent is a push_notifications row.
type PushContent struct {
	ID      int64
	Name    string
	Heading string
	Message string
	URL     string
	Button  string
	Mobile  bool
	// MobileSettings is the unserialized mobile_settings array (mobile only).
	MobileSettings map[string]any
}

// TweetContent is a tweets row.
type TweetContent struct {
	ID   int64
	Name string
	Text string
}

// CustomContent is a custom channel's message_channels row.
type CustomContent struct {
	// Properties is message_channels.properties (JSON).
	Properties []byte
}

// Message is one send on one channel to one contact. Exactly one of the
// content pointers matching Channel is set.
type Message struct {
	// Key is deterministic per dispatch (or queue row) and channel, so that a
	// repeated delivery can be recognised: the email Message-ID, OneSignal's
	// idempotency_key, the webhook's X-Sidecar-Delivery.
	Key        string
	Channel    Name
	ChannelID  int64 // content id: emails.id, sms_messages.id, ...
	MessageID  int64 // marketing message id (0 when unknown, e.g. a queue send)
	CampaignID int64
	EventID    int64

	Contact Contact
	// To is the address on the channel: the email address, the phone number
	// as stored in Mautic (the sender normalizes it), the twitter handle.
	To string
	// PushIDs are the contact's OneSignal player ids of the right kind.
	PushIDs []string
	// TrackingHash is the id hash of the stats row (email: used in the
	// tracking pixel, unsubscribe and web view URLs).
	TrackingHash string

	Email  *EmailContent
	SMS    *SMSContent
	Push   *PushContent
	Tweet  *TweetContent
	Custom *CustomContent
}

// Receipt is what a successful send returns.
type Receipt struct {
	// ProviderID is the provider's id of the message (Twilio SID, OneSignal
	// notification id, tweet id, SMTP Message-ID).
	ProviderID string
	SentAt     time.Time
	// Tokens are the tokens replaced in the content and their values, stored
	// PHP-serialized in email_stats.tokens (email only).
	Tokens map[string]string
}

// Sender delivers one message on one channel.
//
// Send returns an error made with Permanent, Unreachable or OptedOut when a
// retry cannot succeed, or Transient (or any other error) when a retry may.
type Sender interface {
	Send(ctx context.Context, msg Message) (Receipt, error)
}

// SenderFunc adapts a function to the Sender interface.
type SenderFunc func(ctx context.Context, msg Message) (Receipt, error)

// Send implements Sender.
func (f SenderFunc) Send(ctx context.Context, msg Message) (Receipt, error) { return f(ctx, msg) }

// Kind classifies a send error.
type Kind int

// The error kinds, in DESIGN.md section 6 item 5 terms.
const (
	// KindTransient: timeout, connection error, 5xx, 429. Retry the channel.
	KindTransient Kind = iota
	// KindPermanent: the request cannot succeed (4xx, bad content). Next channel, no DNC.
	KindPermanent
	// KindUnreachable: the address is dead (SMTP 5xx for the recipient, invalid
	// number, not subscribed). Next channel, DNC reason 2 (bounced).
	KindUnreachable
	// KindOptedOut: the recipient opted out at the provider (Twilio 21610).
	// Next channel, DNC reason 1 (unsubscribed).
	KindOptedOut
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindPermanent:
		return "permanent"
	case KindUnreachable:
		return "unreachable"
	case KindOptedOut:
		return "opted_out"
	default:
		return "transient"
	}
}

// Sentinels for errors.Is. ErrPermanent matches every kind that must not be
// retried (permanent, unreachable, opted out).
var (
	ErrPermanent   = errors.New("permanent failure")
	ErrUnreachable = errors.New("unreachable address")
	ErrOptedOut    = errors.New("recipient opted out")
	ErrTransient   = errors.New("transient failure")
)

// ErrNotSent marks an error raised before the provider was called (an open
// circuit breaker, a rate-limit wait that would outlast the deadline): the
// dispatcher does not count it as a provider call.
var ErrNotSent = errors.New("provider not called")

// NotSent marks err as raised before any provider call.
func NotSent(err error) error { return notSent{err} }

type notSent struct{ error }

func (n notSent) Unwrap() error { return n.error }

func (n notSent) Is(target error) bool { return target == ErrNotSent }

// Error is a classified send error.
type Error struct {
	Kind Kind
	// RetryAfter is the provider's requested wait (transient only; 0 if none).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.String()
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrPermanent) and friends work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrPermanent:
		return e.Kind != KindTransient
	case ErrUnreachable:
		return e.Kind == KindUnreachable
	case ErrOptedOut:
		return e.Kind == KindOptedOut
	case ErrTransient:
		return e.Kind == KindTransient
	}
	return false
}

// Permanent marks err as permanent.
func Permanent(err error) error { return &Error{Kind: KindPermanent, Err: err} }

// Unreachable marks err as an unreachable address.
func Unreachable(err error) error { return &Error{Kind: KindUnreachable, Err: err} }

// OptedOut marks err as an opt-out at the provider.
func OptedOut(err error) error { return &Error{Kind: KindOptedOut, Err: err} }

// Transient marks err as transient, with an optional provider Retry-After.
func Transient(err error, retryAfter time.Duration) error {
	return &Error{Kind: KindTransient, Err: err, RetryAfter: retryAfter}
}

// Errorf is fmt.Errorf wrapped in a kind.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err. Unclassified errors are transient.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// RetryAfterOf returns the provider's Retry-After carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Registry maps channel names to senders. It is filled explicitly in main.
type Registry struct {
	mu      sync.RWMutex
	senders map[Name]Sender
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{senders: map[Name]Sender{}} }

// Add registers s for name. It is an error to add a name twice.
func (r *Registry) Add(name Name, s Sender) error {
	if name == "" || s == nil {
		return errors.New("registry: empty channel name or nil sender")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.senders[name]; ok {
		return fmt.Errorf("registry: channel %q already has a sender", name)
	}
	r.senders[name] = s
	return nil
}

// Get returns the sender for name.
func (r *Registry) Get(name Name) (Sender, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.senders[name]
	return s, ok
}

// Has reports whether name has a sender.
func (r *Registry) Has(name Name) bool {
	_, ok := r.Get(name)
	return ok
}

// Names returns the registered channel names, sorted.
func (r *Registry) Names() []Name {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Name, 0, len(r.senders))
	for n := range r.senders {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Middleware decorates a Sender (rate limits, circuit breakers, metrics).
type Middleware func(name Name, next Sender) Sender
