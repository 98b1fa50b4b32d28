// Package sms sends Mautic SMS messages through Twilio's Messages API with a
// thin net/http client, and provides the helpers the bridge needs to serve
// Twilio's status callbacks (signature check, callback parsing, opt-out
// recognition).
//
// The request is the one Mautic's Twilio transport makes
// (mautic-reference.md 9.3): POST {base}/2010-04-01/Accounts/{sid}/Messages.json
// with HTTP Basic auth, form fields To (E.164), Body and MessagingServiceSid
// (or From), plus StatusCallback when configured.
package sms

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

// maxAnswer bounds how much of Twilio's answer is read.
const maxAnswer = 1 << 20

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	client   *http.Client
	log      *slog.Logger
	endpoint string
	basic    string // the Authorization header value, for redaction
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender that calls Twilio with client. The
// client must be non-nil and should have a timeout; log may be nil (logs are
// discarded).
func New(cfg Config, client *http.Client, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("sms: nil http client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Sender{
		cfg:      cfg,
		client:   client,
		log:      log.With("channel", string(channels.SMS)),
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		basic:    base64.StdEncoding.EncodeToString([]byte(cfg.AccountSID + ":" + cfg.AuthToken)),
	}, nil
}

// Normalize parses a phone number as stored in Mautic (leads.mobile or
// leads.phone) with libphonenumber, using region for numbers without a
// country code, and returns it in E.164. A number that does not parse or is
// not a valid number for its region is an error.
func Normalize(raw, region string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("no phone number")
	}
	num, err := phonenumbers.Parse(raw, region)
	if err != nil {
		return "", fmt.Errorf("phone number does not parse: %w", err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", errors.New("not a valid phone number")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Send implements channels.Sender. It returns Unreachable without calling
// Twilio when msg.To is not a valid number, Permanent when the message has
// no SMS content or renders empty, and otherwise classifies Twilio's answer:
// see classify.
func (s *Sender) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	if msg.SMS == nil {
		return channels.Receipt{}, channels.Permanent(errors.New("sms: message has no sms content"))
	}
	to, err := Normalize(msg.To, s.cfg.DefaultRegion)
	if err != nil {
		return channels.Receipt{}, channels.Unreachable(fmt.Errorf("sms: %w", err))
	}
	body := render.Contact(msg.SMS.Message, msg.Contact, render.Options{})
	if strings.TrimSpace(body) == "" {
		return channels.Receipt{}, channels.Permanent(errors.New("sms: message body is empty"))
	}

	form := url.Values{"To": {to}, "Body": {body}}
	if s.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", s.cfg.MessagingServiceSID)
	} else {
		form.Set("From", s.cfg.From)
	}
	if cb := s.statusCallback(msg.TrackingHash); cb != "" {
		form.Set("StatusCallback", cb)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("sms: build request: %w", err))
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	s.log.DebugContext(ctx, "twilio send", "contact_id", msg.Contact.ID, "channel_id", msg.ChannelID)
	resp, err := s.client.Do(req)
	if err != nil {
		return channels.Receipt{}, s.redact(channels.TransportError(ctx, "twilio", err), to, msg.To)
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))

	sid, err := classify(resp.StatusCode, resp.Header, data, readErr, time.Now())
	if err != nil {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			s.log.ErrorContext(ctx, "twilio refused the credentials", "status", resp.StatusCode, "contact_id", msg.Contact.ID)
		}
		return channels.Receipt{}, s.redact(err, to, msg.To)
	}
	s.log.DebugContext(ctx, "twilio accepted", "contact_id", msg.Contact.ID, "provider_id", sid)
	return channels.Receipt{ProviderID: sid, SentAt: time.Now().UTC()}, nil
}

// statusCallback returns the StatusCallback URL for a stats row, or "".
func (s *Sender) statusCallback(trackingHash string) string {
	if s.cfg.StatusCallbackURL == "" {
		return ""
	}
	u, err := url.Parse(s.cfg.StatusCallbackURL)
	if err != nil { // validated in New
		return ""
	}
	if trackingHash != "" {
		q := u.Query()
		q.Set("stat", trackingHash)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redact removes the auth token, the Basic credentials and the recipient's
// number from an error's text, keeping its kind and Retry-After. Twilio's
// messages quote the number ("The 'To' number +1... is not valid"), and
// errors end up in logs and in sms_message_stats.details.
func (s *Sender) redact(err error, numbers ...string) error {
	text := err.Error()
	clean := strings.ReplaceAll(text, s.cfg.AuthToken, "[redacted]")
	clean = strings.ReplaceAll(clean, s.basic, "[redacted]")
	for _, n := range numbers {
		if n = strings.TrimSpace(n); len(n) >= 4 {
			clean = strings.ReplaceAll(clean, n, "[to]")
		}
	}
	if clean == text {
		return err
	}
	return &channels.Error{Kind: channels.KindOf(err), RetryAfter: channels.RetryAfterOf(err), Err: errors.New(clean)}
}

// answer is Twilio's JSON answer: a message resource on success, an error
// resource otherwise.
type answer struct {
	SID      string `json:"sid"`
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

// Twilio error codes with a meaning for routing
// (https://www.twilio.com/docs/api/errors).
var (
	// unreachableCodes say the 'To' number cannot receive SMS at all, so
	// the channel is dead for this contact (DNC reason 2 "bounced"):
	// 21211 invalid 'To' number; 21214 'To' number cannot be reached;
	// 21217 number does not appear to be valid; 21407 the number's type does
	// not support SMS; 21614 'To' is not a valid mobile number.
	unreachableCodes = map[int]bool{21211: true, 21214: true, 21217: true, 21407: true, 21614: true}
	// optedOutCodes: 21610, the number replied STOP (DNC reason 1).
	optedOutCodes = map[int]bool{21610: true}
)

// classify turns Twilio's answer into a message SID or a classified error:
//
//	2xx with a sid                  → success
//	2xx unreadable or without sid   → Transient (Twilio may have queued it: at-least-once)
//	429, 5xx                        → Transient, with Retry-After (seconds or HTTP date)
//	4xx code 21211/21214/21217/21407/21614 → Unreachable
//	4xx code 21610                  → OptedOut
//	401, 403                        → Permanent (the caller logs at error level)
//	other 4xx, other statuses       → Permanent
//
// A body that is not JSON, or is cut short, gives an error that says so.
func classify(status int, h http.Header, data []byte, readErr error, now time.Time) (string, error) {
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
			return "", channels.Transient(fmt.Errorf("twilio %d: %w", status, parseErr), 0)
		}
		if a.SID == "" {
			return "", channels.Transient(fmt.Errorf("twilio %d: answer has no message sid", status), 0)
		}
		return a.SID, nil
	case status == http.StatusTooManyRequests || status >= 500:
		return "", channels.Transient(describe(status, a, parseErr), channels.RetryAfter(h, now))
	case status >= 400 && status < 500:
		err := describe(status, a, parseErr)
		switch {
		case parseErr == nil && unreachableCodes[a.Code]:
			return "", channels.Unreachable(err)
		case parseErr == nil && optedOutCodes[a.Code]:
			return "", channels.OptedOut(err)
		}
		return "", channels.Permanent(err)
	default:
		return "", channels.Permanent(describe(status, a, parseErr))
	}
}

// describe writes a Twilio error answer as "twilio 400 code 21211: message".
func describe(status int, a answer, parseErr error) error {
	if parseErr != nil {
		return fmt.Errorf("twilio %d: %w", status, parseErr)
	}
	msg := strings.TrimSpace(a.Message)
	if msg == "" {
		msg = http.StatusText(status)
	}
	if a.Code != 0 {
		return fmt.Errorf("twilio %d code %d: %s", status, a.Code, msg)
	}
	return fmt.Errorf("twilio %d: %s", status, msg)
}
