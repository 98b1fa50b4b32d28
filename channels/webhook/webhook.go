// Package webhook delivers messages of custom channels (any channel key
// configured with CHANNEL_<KEY>_WEBHOOK_URL) as a signed JSON POST.
//
// The body is a Payload. Headers: Content-Type application/json,
// X-Sidecar-Delivery (the message key, stable across retries),
// X-Sidecar-Timestamp (Unix seconds) and, when a secret is configured,
// X-Sidecar-Signature: "sha256=" + lowercase hex HMAC-SHA256(secret,
// timestamp + "." + body). Receivers check it with Verify.
//
// Answers: 2xx is a success; 408, 429 and 5xx are transient (Retry-After
// honoured); 410 Gone means the address is dead (unreachable); any other
// status, redirects included (they are not followed), is permanent.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

// maxAnswer bounds how much of the receiver's answer is read.
const maxAnswer = 64 << 10

// Payload is the JSON body of a delivery.
type Payload struct {
	Channel    channels.Name `json:"channel"`
	ChannelID  int64         `json:"channel_id"`
	MessageID  *int64        `json:"message_id"`  // null when unknown (a queue send)
	CampaignID *int64        `json:"campaign_id"` // null when unknown
	EventID    *int64        `json:"event_id"`    // null when unknown
	Key        string        `json:"key"`
	Contact    Contact       `json:"contact"`
	// Content is message_channels.properties with the contact tokens
	// replaced in every string value; null when the row has none.
	Content json.RawMessage `json:"content"`
	SentAt  time.Time       `json:"sent_at"`
}

// Contact is the contact part of a Payload: its id and every non-NULL field.
type Contact struct {
	ID     int64             `json:"id"`
	Fields map[string]string `json:"fields"`
}

// Sender delivers custom-channel messages to one webhook. It is safe for
// concurrent use.
type Sender struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender that posts with client (which must
// be non-nil and should have a timeout). log may be nil.
func New(cfg Config, client *http.Client, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("webhook: nil http client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, client: client, log: log.With("channel", string(cfg.Channel)), now: time.Now}, nil
}

// noRedirect is a copy of the injected client that does not follow
// redirects: a 301/302 would turn the POST into a GET, and any redirect
// could hand the signed body to another host. Built per send so that a
// transport swapped in after New (gock in tests) is used.
func (s *Sender) noRedirect() *http.Client {
	c := *s.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// Send implements channels.Sender. It returns Permanent without a call when
// the content is not valid JSON, and otherwise classifies the receiver's
// answer (see the package documentation). Receipt.ProviderID is the "id"
// string of a JSON answer when there is one, else the message key.
func (s *Sender) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	now := s.now().UTC()
	body, err := s.body(msg, now)
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("webhook %s: %w", s.cfg.Channel, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("webhook %s: build request", s.cfg.Channel))
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mautic-sidecar")
	req.Header.Set(DeliveryHeader, msg.Key)
	req.Header.Set(TimestampHeader, ts)
	if s.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(s.cfg.Secret, ts, body))
	}

	s.log.DebugContext(ctx, "webhook send", "contact_id", msg.Contact.ID, "channel_id", msg.ChannelID)
	resp, err := s.noRedirect().Do(req)
	if err != nil {
		return channels.Receipt{}, s.redact(channels.TransportError(ctx, "webhook "+string(s.cfg.Channel), err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))

	if err := classify(s.cfg.Channel, resp.StatusCode, resp.Header, data, time.Now()); err != nil {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			s.log.ErrorContext(ctx, "webhook refused the delivery", "status", resp.StatusCode, "contact_id", msg.Contact.ID)
		}
		return channels.Receipt{}, s.redact(err)
	}
	id := msg.Key
	var a struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(data, &a) == nil {
		switch v := a.ID.(type) {
		case string:
			if v != "" {
				id = v
			}
		case float64:
			id = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	s.log.DebugContext(ctx, "webhook accepted", "contact_id", msg.Contact.ID, "provider_id", id)
	return channels.Receipt{ProviderID: id, SentAt: now}, nil
}

// body renders the payload for msg.
func (s *Sender) body(msg channels.Message, now time.Time) ([]byte, error) {
	fields := make(map[string]string, len(msg.Contact.Fields))
	for k, v := range msg.Contact.Fields {
		if v != nil {
			fields[k] = *v
		}
	}
	content := json.RawMessage("null")
	if msg.Custom != nil && len(bytes.TrimSpace(msg.Custom.Properties)) > 0 {
		c, err := renderJSON(msg.Custom.Properties, msg.Contact)
		if err != nil {
			return nil, err
		}
		content = c
	}
	p := Payload{
		Channel:    s.cfg.Channel,
		ChannelID:  msg.ChannelID,
		MessageID:  optional(msg.MessageID),
		CampaignID: optional(msg.CampaignID),
		EventID:    optional(msg.EventID),
		Key:        msg.Key,
		Contact:    Contact{ID: msg.Contact.ID, Fields: fields},
		Content:    content,
		SentAt:     now,
	}
	return marshal(p)
}

func optional(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// renderJSON replaces contact tokens in every string value of a JSON
// document (object keys are left alone). Numbers keep their text.
func renderJSON(doc []byte, c channels.Contact) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("content (message_channels.properties) is not valid json")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("content (message_channels.properties) has trailing data after the json value")
	}
	// Company fields are offered as a fallback: a custom channel is ours, and
	// nothing in Mautic restricts its tokens to contact fields.
	o := render.Options{Company: true}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return render.Contact(x, c, o)
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
			return x
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
			return x
		}
		return v
	}
	return marshal(walk(v))
}

// marshal is json.Marshal without HTML escaping and without the trailing
// newline of Encoder.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// redact removes the secret and the URL's credentials from an error's text.
func (s *Sender) redact(err error) error {
	text := err.Error()
	clean := text
	if s.cfg.Secret != "" {
		clean = strings.ReplaceAll(clean, s.cfg.Secret, "[redacted]")
	}
	if u, perr := url.Parse(s.cfg.URL); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			clean = strings.ReplaceAll(clean, p, "[redacted]")
		}
		for _, vs := range u.Query() {
			for _, v := range vs {
				if len(v) >= 6 {
					clean = strings.ReplaceAll(clean, v, "[redacted]")
				}
			}
		}
	}
	if clean == text {
		return err
	}
	return &channels.Error{Kind: channels.KindOf(err), RetryAfter: channels.RetryAfterOf(err), Err: errors.New(clean)}
}

// classify maps the receiver's status to nil or a classified error.
func classify(ch channels.Name, status int, h http.Header, data []byte, now time.Time) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return channels.Transient(describe(ch, status, h, data), channels.RetryAfter(h, now))
	case status == http.StatusGone:
		return channels.Unreachable(describe(ch, status, h, data))
	default:
		return channels.Permanent(describe(ch, status, h, data))
	}
}

// describe says "webhook whatsapp 400: <start of the answer>".
func describe(ch channels.Name, status int, h http.Header, data []byte) error {
	if status >= 300 && status < 400 {
		return fmt.Errorf("webhook %s %d: redirects are not followed", ch, status)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text == "" {
		text = http.StatusText(status)
	}
	return fmt.Errorf("webhook %s %d: %s", ch, status, text)
}
