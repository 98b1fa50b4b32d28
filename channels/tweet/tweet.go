// Package tweet posts Mautic tweets (channel tweet) through X API v2,
// POST {base}/2/tweets, signed with OAuth 1.0a user context
// (github.com/dghubble/oauth1). The post mentions the contact's handle, as
// Mautic's tweet action does.
//
// Mautic's own tweet action is broken in 5.x (mautic-reference.md 3.4); this
// sender implements the documented behaviour.
package tweet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dghubble/oauth1"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

// maxAnswer bounds how much of X's answer is read.
const maxAnswer = 1 << 20

// Sender posts tweets. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	client   *http.Client
	log      *slog.Logger
	endpoint string
	oauth    *oauth1.Config
	token    *oauth1.Token
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender. Requests go through client (its
// Transport, Timeout, Jar and CheckRedirect), with an OAuth 1.0a
// Authorization header added per request. The client must be non-nil; log
// may be nil.
func New(cfg Config, client *http.Client, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("tweet: nil http client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Sender{
		cfg:      cfg,
		client:   client,
		log:      log.With("channel", string(channels.Tweet)),
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/2/tweets",
		oauth:    oauth1.NewConfig(cfg.ConsumerKey, cfg.ConsumerSecret),
		token:    oauth1.NewToken(cfg.AccessToken, cfg.AccessSecret),
	}, nil
}

// signingClient returns a copy of the injected client whose transport signs
// each request and then hands it to the injected client's transport. It is
// built per send, so a transport swapped in after New (gock's
// InterceptClient in tests, an instrumented transport) is used.
func (s *Sender) signingClient(ctx context.Context) *http.Client {
	c := *s.client
	signed := s.oauth.Client(context.WithValue(ctx, oauth1.HTTPClient, s.client), s.token)
	c.Transport = signed.Transport
	return &c
}

// Send implements channels.Sender. It returns Unreachable without calling X
// when the contact has no valid handle, Permanent when the message has no
// tweet content or is longer than MaxLength once rendered and addressed,
// and otherwise classifies X's answer: see classify.
func (s *Sender) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	if msg.Tweet == nil {
		return channels.Receipt{}, channels.Permanent(errors.New("tweet: message has no tweet content"))
	}
	handle, err := NormalizeHandle(msg.To)
	if err != nil {
		return channels.Receipt{}, channels.Unreachable(fmt.Errorf("tweet: %w", err))
	}
	text := strings.TrimSpace(render.Contact(msg.Tweet.Text, msg.Contact, render.Options{}))
	if text == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("tweet: text is empty"))
	}
	text = Compose(text, handle)
	if n := Length(text); n > MaxLength {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("tweet: text is %d characters, over X's limit of %d", n, MaxLength))
	}

	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("tweet: encode request: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("tweet: build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	s.log.DebugContext(ctx, "x post", "contact_id", msg.Contact.ID, "channel_id", msg.ChannelID)
	resp, err := s.signingClient(ctx).Do(req)
	if err != nil {
		return channels.Receipt{}, s.redact(channels.TransportError(ctx, "x", err))
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))

	id, duplicate, err := classify(resp.StatusCode, resp.Header, data, readErr, time.Now())
	if err != nil {
		if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && !duplicate {
			s.log.ErrorContext(ctx, "x refused the request", "status", resp.StatusCode, "contact_id", msg.Contact.ID)
		}
		return channels.Receipt{}, s.redact(err)
	}
	s.log.DebugContext(ctx, "x posted", "contact_id", msg.Contact.ID, "provider_id", id)
	return channels.Receipt{ProviderID: id, SentAt: time.Now().UTC()}, nil
}

// redact removes the four credentials from an error's text (X never echoes
// them, but a proxy might), keeping the kind and Retry-After.
func (s *Sender) redact(err error) error {
	text := err.Error()
	clean := text
	for _, sec := range s.cfg.secrets() {
		clean = strings.ReplaceAll(clean, sec, "[redacted]")
		clean = strings.ReplaceAll(clean, oauth1.PercentEncode(sec), "[redacted]")
	}
	if clean == text {
		return err
	}
	return &channels.Error{Kind: channels.KindOf(err), RetryAfter: channels.RetryAfterOf(err), Err: errors.New(clean)}
}

// answer is X's JSON answer: {"data":{"id","text"}} on success, an RFC
// 7807-style problem ({"title","detail","type","status"}) or
// {"errors":[{"message"}]} otherwise.
type answer struct {
	Data *struct {
		ID string `json:"id"`
	} `json:"data"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Reason string `json:"reason"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// classify turns X's answer into a post id or a classified error, and says
// whether a 403 was the duplicate-content refusal:
//
//	2xx with data.id         → success
//	2xx unreadable           → Transient
//	403 duplicate content    → Permanent (the content, not the credentials)
//	401, other 403           → Permanent (the caller logs at error level)
//	429                      → Transient, RetryAfter from x-rate-limit-reset (or Retry-After)
//	5xx                      → Transient, with Retry-After
//	other statuses           → Permanent
func classify(status int, h http.Header, data []byte, readErr error, now time.Time) (id string, duplicate bool, err error) {
	var a answer
	var parseErr error
	if readErr != nil {
		parseErr = fmt.Errorf("answer cut short after %d bytes: %w", len(data), readErr)
	} else if err := json.Unmarshal(data, &a); err != nil {
		parseErr = fmt.Errorf("answer is not json (%d bytes, %s)", len(data), channels.DescribeContentType(h))
	}
	switch {
	case status >= 200 && status < 300:
		if parseErr != nil {
			return "", false, channels.Transient(fmt.Errorf("x %d: %w", status, parseErr), 0)
		}
		if a.Data == nil || a.Data.ID == "" {
			return "", false, channels.Transient(fmt.Errorf("x %d: answer has no post id", status), 0)
		}
		return a.Data.ID, false, nil
	case status == http.StatusTooManyRequests:
		wait := rateLimitReset(h, now)
		if wait == 0 {
			wait = channels.RetryAfter(h, now)
		}
		return "", false, channels.Transient(describe(status, a, parseErr), wait)
	case status >= 500:
		return "", false, channels.Transient(describe(status, a, parseErr), channels.RetryAfter(h, now))
	case status == http.StatusForbidden && parseErr == nil && strings.Contains(strings.ToLower(a.Detail+" "+messages(a)), "duplicate"):
		return "", true, channels.Permanent(describe(status, a, nil))
	default:
		return "", false, channels.Permanent(describe(status, a, parseErr))
	}
}

func messages(a answer) string {
	var parts []string
	for _, e := range a.Errors {
		if e.Message != "" {
			parts = append(parts, e.Message)
		}
	}
	return strings.Join(parts, "; ")
}

func describe(status int, a answer, parseErr error) error {
	if parseErr != nil {
		return fmt.Errorf("x %d: %w", status, parseErr)
	}
	var parts []string
	for _, p := range []string{a.Title, a.Detail, messages(a)} {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if a.Reason != "" {
		parts = append(parts, "reason "+a.Reason)
	}
	if len(parts) == 0 {
		parts = append(parts, http.StatusText(status))
	}
	return fmt.Errorf("x %d: %s", status, strings.Join(parts, ": "))
}

// rateLimitReset reads x-rate-limit-reset (the Unix time at which the
// window resets) as a wait from now.
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("X-Rate-Limit-Reset"))
	if v == "" {
		return 0
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0
	}
	if d := time.Unix(sec, 0).Sub(now); d > 0 {
		return d.Round(time.Second)
	}
	return 0
}
