// Package push sends Mautic web push (channel notification) and mobile push
// (channel mobile_notification) notifications through OneSignal's REST API
// with a thin net/http client. One Sender serves both channels: the
// content's Mobile flag selects the platform fields.
//
// The request is the one Mautic's OneSignalApi makes (mautic-reference.md
// 9.3): POST {base}/api/v1/notifications with "Authorization: Basic <REST
// API key>" and a JSON body, plus an idempotency_key derived from the
// message key so that a retried send is not delivered twice.
package push

import (
	"context"
	"crypto/sha1" //nolint:gosec // RFC 4122 name-based (version 5) UUIDs are defined on SHA-1.
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

// maxAnswer bounds how much of OneSignal's answer is read.
const maxAnswer = 1 << 20

// Sender sends push notifications through OneSignal. It is safe for
// concurrent use.
type Sender struct {
	cfg      Config
	client   *http.Client
	log      *slog.Logger
	endpoint string
}

var _ channels.Sender = (*Sender)(nil)

// New validates cfg and returns a Sender that calls OneSignal with client.
// The client must be non-nil and should have a timeout; log may be nil.
func New(cfg Config, client *http.Client, log *slog.Logger) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("push: nil http client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	return &Sender{
		cfg:      cfg,
		client:   client,
		log:      log,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/api/v1/notifications",
	}, nil
}

// Send implements channels.Sender. It returns Unreachable without calling
// OneSignal when msg.PushIDs is empty, Permanent when the message has no
// push content (or content of the other kind: web content on
// mobile_notification or the reverse), and otherwise classifies
// OneSignal's answer: see classify.
func (s *Sender) Send(ctx context.Context, msg channels.Message) (channels.Receipt, error) {
	p := msg.Push
	if p == nil {
		return channels.Receipt{}, channels.Permanent(errors.New("push: message has no push content"))
	}
	if (msg.Channel == channels.Notification && p.Mobile) || (msg.Channel == channels.MobileNotification && !p.Mobile) {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("push: content %d (mobile=%t) does not match channel %s", p.ID, p.Mobile, msg.Channel))
	}
	ids := nonEmpty(msg.PushIDs)
	if len(ids) == 0 {
		return channels.Receipt{}, channels.Unreachable(errors.New("push: contact has no player id (not subscribed)"))
	}
	log := s.log.With("channel", string(msg.Channel))

	body, err := json.Marshal(s.payload(msg, ids))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("push: encode request: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(string(body)))
	if err != nil {
		return channels.Receipt{}, channels.Permanent(fmt.Errorf("push: build request: %w", err))
	}
	req.Header.Set("Authorization", "Basic "+s.cfg.RESTAPIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	log.DebugContext(ctx, "onesignal send", "contact_id", msg.Contact.ID, "channel_id", msg.ChannelID)
	resp, err := s.client.Do(req)
	if err != nil {
		return channels.Receipt{}, s.redact(channels.TransportError(ctx, "onesignal", err))
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))

	res, err := classify(resp.StatusCode, resp.Header, data, readErr, ids, time.Now())
	if err != nil {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			log.ErrorContext(ctx, "onesignal refused the credentials", "status", resp.StatusCode, "contact_id", msg.Contact.ID)
		}
		return channels.Receipt{}, s.redact(err)
	}
	if res.invalid > 0 {
		log.DebugContext(ctx, "onesignal skipped unsubscribed players", "contact_id", msg.Contact.ID, "invalid", res.invalid, "provider_id", res.id)
	}
	log.DebugContext(ctx, "onesignal accepted", "contact_id", msg.Contact.ID, "provider_id", res.id)
	return channels.Receipt{ProviderID: res.id, SentAt: time.Now().UTC()}, nil
}

// payload builds the notification the way Mautic's OneSignalApi does, with
// the contact tokens of heading and message replaced.
func (s *Sender) payload(msg channels.Message, ids []string) map[string]any {
	p := msg.Push
	heading := render.Contact(p.Heading, msg.Contact, render.Options{})
	message := render.Contact(p.Message, msg.Contact, render.Options{})

	data := map[string]any{
		"app_id":             s.cfg.AppID,
		"include_player_ids": ids,
		"contents":           map[string]string{"en": message},
	}
	if heading != "" {
		data["headings"] = map[string]string{"en": heading}
	}
	if p.URL != "" {
		data["url"] = p.URL
	}
	if msg.Key != "" {
		data["idempotency_key"] = IdempotencyKey(msg.Key)
	}
	if p.Mobile {
		addMobile(data, p.MobileSettings)
		if p.Button != "" {
			data["buttons"] = []map[string]string{{"id": heading, "text": p.Button}}
		}
	} else if p.Button != "" && p.URL != "" {
		// Mautic sends a web button only with a URL to open.
		data["web_buttons"] = []map[string]string{{"id": heading, "text": p.Button, "url": p.URL}}
	}
	return data
}

// addMobile maps Mautic's mobile_settings to OneSignal's platform fields,
// as OneSignalApi::addMobileData does. Empty values are left out (Mautic
// would send them as given; OneSignal rejects some, e.g. a color "FF").
func addMobile(data map[string]any, settings map[string]any) {
	for key, v := range settings {
		s := asString(v)
		switch key {
		case "ios_sound":
			if s == "" {
				s = "default"
			}
			data["ios_sound"] = s
		case "ios_contentAvailable":
			data["content_available"] = asBool(v)
		case "ios_mutableContent":
			data["mutable_content"] = asBool(v)
		}
		if s == "" {
			continue
		}
		switch key {
		case "ios_subtitle":
			data["subtitle"] = map[string]string{"en": s}
		case "ios_badges":
			data["ios_badgeType"] = s
		case "ios_badgeCount":
			n, _ := strconv.Atoi(s)
			data["ios_badgeCount"] = n
		case "ios_media":
			data["ios_attachments"] = map[string]string{"id_media": s}
		case "android_sound":
			data["android_sound"] = s
		case "android_small_icon":
			data["small_icon"] = s
		case "android_large_icon":
			data["large_icon"] = s
		case "android_big_picture":
			data["big_picture"] = s
		case "android_led_color":
			data["android_led_color"] = "FF" + strings.ToUpper(s)
		case "android_accent_color":
			data["android_accent_color"] = "FF" + strings.ToUpper(s)
		case "android_group_key":
			data["android_group"] = s
		case "android_lockscreen_visibility":
			n, _ := strconv.Atoi(s)
			data["android_visibility"] = n
		}
	}
	if extra := additionalData(settings["additional_data"]); len(extra) > 0 {
		data["data"] = extra
	}
}

// additionalData turns Mautic's sortable list {"list": [{"label","value"}, ...]}
// into a label → value map. PHP lists may arrive as slices or as maps with
// numeric keys, depending on how they were unserialized.
func additionalData(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var items []any
	switch l := m["list"].(type) {
	case []any:
		items = l
	case map[string]any:
		for i := 0; i < len(l); i++ {
			items = append(items, l[strconv.Itoa(i)])
		}
	}
	out := map[string]string{}
	for _, it := range items {
		if kv, ok := it.(map[string]any); ok {
			if label := asString(kv["label"]); label != "" {
				out[label] = asString(kv["value"])
			}
		}
	}
	return out
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "1"
		}
		return ""
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

func asBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x != "" && x != "0"
	case nil:
		return false
	default:
		return fmt.Sprint(x) != "0"
	}
}

func nonEmpty(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// keyNamespace is the sidecar's RFC 4122 namespace for idempotency keys.
var keyNamespace = [16]byte{0xaa, 0x1c, 0xf8, 0xc3, 0x54, 0x73, 0x40, 0x73, 0x92, 0xcf, 0x44, 0x90, 0xba, 0xcb, 0xf8, 0x1c}

// IdempotencyKey derives OneSignal's idempotency_key from a message key: a
// name-based version 5 UUID (SHA-1 of a fixed namespace and the key), so
// the same key always gives the same UUID, as OneSignal requires.
func IdempotencyKey(key string) string {
	h := sha1.New() //nolint:gosec // see import
	h.Write(keyNamespace[:])
	h.Write([]byte(key))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// redact removes the REST API key from an error's text (a proxy or a
// misbehaving server may echo the Authorization header), keeping the kind.
func (s *Sender) redact(err error) error {
	text := err.Error()
	if !strings.Contains(text, s.cfg.RESTAPIKey) {
		return err
	}
	return &channels.Error{
		Kind:       channels.KindOf(err),
		RetryAfter: channels.RetryAfterOf(err),
		Err:        errors.New(strings.ReplaceAll(text, s.cfg.RESTAPIKey, "[redacted]")),
	}
}

// answer is OneSignal's JSON answer. errors is polymorphic: an array of
// strings, or an object such as {"invalid_player_ids": [...]}.
type answer struct {
	ID     string          `json:"id"`
	Errors json.RawMessage `json:"errors"`
}

type result struct {
	id      string
	invalid int // player ids OneSignal reported as not subscribed
}

// classify turns OneSignal's answer into a notification id or a classified
// error. The body is read whatever the status:
//
//	200 with an id, some player ids valid      → success
//	200 whose invalid_player_ids cover all ids → Unreachable (not subscribed)
//	200 with an empty id                       → Unreachable (not subscribed)
//	200 unreadable                             → Transient (the idempotency key makes the retry safe)
//	400 whose errors say no player is subscribed → Unreachable
//	401, 403                                   → Permanent (the caller logs at error level)
//	429, 5xx                                   → Transient, with Retry-After
//	other 4xx, other statuses                  → Permanent
func classify(status int, h http.Header, data []byte, readErr error, ids []string, now time.Time) (result, error) {
	var a answer
	var parseErr error
	if readErr != nil {
		parseErr = fmt.Errorf("answer cut short after %d bytes: %w", len(data), readErr)
	} else if err := json.Unmarshal(data, &a); err != nil {
		parseErr = fmt.Errorf("answer is not json (%d bytes, %s)", len(data), channels.DescribeContentType(h))
	}
	msgs, invalid := parseErrors(a.Errors)
	allInvalid := len(invalid) > 0 && covers(invalid, ids)

	switch {
	case status >= 200 && status < 300:
		switch {
		case parseErr != nil:
			return result{}, channels.Transient(fmt.Errorf("onesignal %d: %w", status, parseErr), 0)
		case allInvalid:
			return result{}, channels.Unreachable(fmt.Errorf("onesignal %d: all %d player ids are not subscribed", status, len(ids)))
		case a.ID == "":
			return result{}, channels.Unreachable(fmt.Errorf("onesignal %d: no notification created (not subscribed)%s", status, joined(msgs)))
		}
		return result{id: a.ID, invalid: len(invalid)}, nil
	case status == http.StatusTooManyRequests || status >= 500:
		return result{}, channels.Transient(describe(status, msgs, parseErr), channels.RetryAfter(h, now))
	case status == http.StatusBadRequest && parseErr == nil && (allInvalid || notSubscribed(msgs)):
		return result{}, channels.Unreachable(describe(status, msgs, nil))
	default:
		return result{}, channels.Permanent(describe(status, msgs, parseErr))
	}
}

// parseErrors reads OneSignal's errors field: messages, and the player ids
// it names as invalid.
func parseErrors(raw json.RawMessage) (msgs, invalid []string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		for _, v := range list {
			msgs = append(msgs, asString(v))
		}
		return msgs, nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return []string{string(raw)}, nil
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if k == "invalid_player_ids" {
			_ = json.Unmarshal(obj[k], &invalid)
			continue
		}
		msgs = append(msgs, k+": "+string(obj[k]))
	}
	return msgs, invalid
}

func covers(invalid, ids []string) bool {
	set := make(map[string]bool, len(invalid))
	for _, id := range invalid {
		set[id] = true
	}
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return true
}

func notSubscribed(msgs []string) bool {
	for _, m := range msgs {
		m = strings.ToLower(m)
		if strings.Contains(m, "not subscribed") || strings.Contains(m, "no subscribed") {
			return true
		}
	}
	return false
}

func joined(msgs []string) string {
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}

func describe(status int, msgs []string, parseErr error) error {
	if parseErr != nil {
		return fmt.Errorf("onesignal %d: %w", status, parseErr)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("onesignal %d: %s", status, http.StatusText(status))
	}
	return fmt.Errorf("onesignal %d%s", status, joined(msgs))
}
