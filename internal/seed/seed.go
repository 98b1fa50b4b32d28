// Package seed writes Mautic rows the way Mautic's UI would, every NOT NULL
// column included: for tests, the demo and the load tool. It never runs
// against a real Mautic database.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/mautic"
)

// Seeder inserts rows into one database with one table prefix.
type Seeder struct {
	DB     sqlx.ExtContext
	Prefix string
	// Now is the time written to date_added columns (default: time.Now).
	Now func() time.Time
}

// New returns a seeder.
func New(db sqlx.ExtContext, prefix string) *Seeder {
	return &Seeder{DB: db, Prefix: prefix, Now: func() time.Time { return time.Now().UTC() }}
}

func (s *Seeder) t(name string) string { return "`" + s.Prefix + name + "`" }

func (s *Seeder) insert(ctx context.Context, table string, cols map[string]any) (int64, error) {
	names := make([]string, 0, len(cols))
	for k := range cols {
		names = append(names, k)
	}
	sort.Strings(names)
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = cols[n]
		names[i] = "`" + n + "`"
	}
	q := "INSERT INTO " + s.t(table) + " (" + strings.Join(names, ", ") + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
	res, err := s.DB.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("seed %s: %w", table, err)
	}
	id, _ := res.LastInsertId()
	return id, nil
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// Contact is a leads row.
type Contact struct {
	FirstName, LastName, Email, Mobile, Phone, Twitter, Country, City, CompanyName string
	// Extra sets other field columns by alias.
	Extra map[string]any
}

// Contact inserts a contact and returns its id.
func (s *Seeder) Contact(ctx context.Context, c Contact) (int64, error) {
	now := s.Now()
	cols := map[string]any{
		"is_published": true, "date_added": now, "date_modified": now, "points": 0,
		"firstname": orNil(c.FirstName), "lastname": orNil(c.LastName), "email": orNil(c.Email), "mobile": orNil(c.Mobile),
		"phone": orNil(c.Phone), "twitter": orNil(c.Twitter), "country": orNil(c.Country), "city": orNil(c.City),
		"company": orNil(c.CompanyName),
	}
	for k, v := range c.Extra {
		cols[k] = v
	}
	return s.insert(ctx, "leads", cols)
}

// Company is a companies row.
type Company struct {
	Name, City, Zip, Country string
}

// Company inserts a company linked to contactID (primary or not).
func (s *Seeder) Company(ctx context.Context, contactID int64, c Company, primary bool) (int64, error) {
	now := s.Now()
	id, err := s.insert(ctx, "companies", map[string]any{"is_published": true, "date_added": now, "companyname": c.Name,
		"companycity": orNil(c.City), "companyzipcode": orNil(c.Zip), "companycountry": orNil(c.Country), "score": 0})
	if err != nil {
		return 0, err
	}
	_, err = s.insert(ctx, "companies_leads", map[string]any{"company_id": id, "lead_id": contactID, "date_added": now,
		"is_primary": primary})
	return id, err
}

// Category inserts a categories row.
func (s *Seeder) Category(ctx context.Context, title string, published bool) (int64, error) {
	return s.insert(ctx, "categories", map[string]any{"is_published": published, "date_added": s.Now(), "title": title,
		"alias": strings.ToLower(strings.ReplaceAll(title, " ", "-")), "bundle": "global"})
}

// Email is an emails row.
type Email struct {
	Name, Subject, HTML, Text, FromAddress, FromName, ReplyTo, BCC string
	Unpublished                                                    bool
	PublishUp, PublishDown, VariantStart                           *time.Time
	CategoryID                                                     int64
	Headers                                                        map[string]string
}

// Email inserts an email.
func (s *Seeder) Email(ctx context.Context, e Email) (int64, error) {
	if e.Name == "" {
		e.Name = "Email"
	}
	headers := "{}"
	if len(e.Headers) > 0 {
		b, _ := json.Marshal(e.Headers)
		headers = string(b)
	}
	var cat any
	if e.CategoryID > 0 {
		cat = e.CategoryID
	}
	return s.insert(ctx, "emails", map[string]any{
		"is_published": !e.Unpublished, "date_added": s.Now(), "name": e.Name, "subject": orNil(e.Subject),
		"custom_html": orNil(e.HTML), "plain_text": orNil(e.Text), "from_address": orNil(e.FromAddress),
		"from_name": orNil(e.FromName), "reply_to_address": orNil(e.ReplyTo), "bcc_address": orNil(e.BCC),
		"email_type": "template", "publish_up": timeOrNil(e.PublishUp), "publish_down": timeOrNil(e.PublishDown),
		"variant_start_date": timeOrNil(e.VariantStart), "category_id": cat,
		"read_count": 0, "sent_count": 0, "variant_sent_count": 0, "variant_read_count": 0, "revision": 1, "lang": "en",
		"headers": headers, "content": "a:0:{}", "utm_tags": "a:0:{}", "variant_settings": "a:0:{}", "dynamic_content": "a:0:{}",
	})
}

// SMS is an sms_messages row.
type SMS struct {
	Name, Message          string
	Unpublished            bool
	PublishUp, PublishDown *time.Time
	CategoryID             int64
}

// SMS inserts a text message.
func (s *Seeder) SMS(ctx context.Context, m SMS) (int64, error) {
	if m.Name == "" {
		m.Name = "SMS"
	}
	var cat any
	if m.CategoryID > 0 {
		cat = m.CategoryID
	}
	return s.insert(ctx, "sms_messages", map[string]any{"is_published": !m.Unpublished, "date_added": s.Now(), "name": m.Name,
		"lang": "en", "message": m.Message, "sms_type": "template", "publish_up": timeOrNil(m.PublishUp),
		"publish_down": timeOrNil(m.PublishDown), "sent_count": 0, "category_id": cat})
}

// Push is a push_notifications row.
type Push struct {
	Name, Heading, Message, URL, Button string
	Mobile, Unpublished                 bool
}

// Push inserts a web (or mobile) push notification.
func (s *Seeder) Push(ctx context.Context, p Push) (int64, error) {
	if p.Name == "" {
		p.Name = "Push"
	}
	return s.insert(ctx, "push_notifications", map[string]any{"is_published": !p.Unpublished, "date_added": s.Now(),
		"name": p.Name, "lang": "en", "url": orNil(p.URL), "heading": p.Heading, "message": p.Message, "button": orNil(p.Button),
		"utm_tags": "a:0:{}", "notification_type": "template", "read_count": 0, "sent_count": 0, "mobile": p.Mobile,
		"mobile_settings": "a:0:{}"})
}

// Tweet inserts a tweets row.
func (s *Seeder) Tweet(ctx context.Context, name, text string, published bool) (int64, error) {
	return s.insert(ctx, "tweets", map[string]any{"is_published": published, "date_added": s.Now(), "name": name,
		"text": text, "sent_count": 0, "favorite_count": 0, "retweet_count": 0, "lang": "en"})
}

// Channel is a message_channels row.
type Channel struct {
	Channel   string
	ChannelID int64 // 0: NULL
	Disabled  bool
	// Properties is the JSON; default "[]".
	Properties string
}

// Message inserts a marketing message with its channels, in the order given
// (ids ascending).
func (s *Seeder) Message(ctx context.Context, name string, chans ...Channel) (int64, error) {
	now := s.Now()
	id, err := s.insert(ctx, "messages", map[string]any{"is_published": true, "date_added": now, "name": name})
	if err != nil {
		return 0, err
	}
	for _, c := range chans {
		props := c.Properties
		if props == "" {
			props = "[]"
		}
		var chID any
		if c.ChannelID > 0 {
			chID = c.ChannelID
		}
		if _, err := s.insert(ctx, "message_channels", map[string]any{"message_id": id, "channel": c.Channel,
			"channel_id": chID, "properties": props, "is_enabled": !c.Disabled}); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// Rule is a lead_frequencyrules row.
type Rule struct {
	ContactID          int64
	Channel            string
	Limit              *mautic.Limit // nil: number and time NULL
	Preferred          bool
	PauseFrom, PauseTo *time.Time
}

// Rule inserts a frequency rule.
func (s *Seeder) Rule(ctx context.Context, r Rule) (int64, error) {
	var num, unit any
	if r.Limit != nil {
		num, unit = r.Limit.Number, string(r.Limit.Unit)
	}
	return s.insert(ctx, "lead_frequencyrules", map[string]any{"lead_id": r.ContactID, "date_added": s.Now(),
		"frequency_number": num, "frequency_time": unit, "channel": r.Channel, "preferred_channel": r.Preferred,
		"pause_from_date": timeOrNil(r.PauseFrom), "pause_to_date": timeOrNil(r.PauseTo)})
}

// DNC inserts a lead_donotcontact row.
func (s *Seeder) DNC(ctx context.Context, contactID int64, channel string, reason mautic.DNCReason) (int64, error) {
	return s.insert(ctx, "lead_donotcontact", map[string]any{"lead_id": contactID, "date_added": s.Now(), "reason": int(reason),
		"channel": channel, "comments": "seeded"})
}

// EmailStat inserts an email_stats row sent at sent.
func (s *Seeder) EmailStat(ctx context.Context, contactID, emailID int64, sent time.Time) error {
	var eid any
	if emailID > 0 {
		eid = emailID
	}
	_, err := s.insert(ctx, "email_stats", map[string]any{"email_id": eid, "lead_id": contactID,
		"email_address": fmt.Sprintf("c%d@example.test", contactID), "date_sent": sent.UTC(), "is_read": false, "is_failed": false,
		"viewed_in_browser": false, "tracking_hash": mautic.NewTrackingHash(), "retry_count": 0, "open_count": 0,
		"tokens": "a:0:{}", "open_details": "a:0:{}"})
	return err
}

// SMSStat inserts an sms_message_stats row sent at sent.
func (s *Seeder) SMSStat(ctx context.Context, contactID, smsID int64, sent time.Time, failed bool) error {
	var sid any
	if smsID > 0 {
		sid = smsID
	}
	details := "[]"
	if failed {
		details = `{"failed":["seeded failure"]}`
	}
	_, err := s.insert(ctx, "sms_message_stats", map[string]any{"sms_id": sid, "lead_id": contactID, "date_sent": sent.UTC(),
		"is_failed": failed, "tracking_hash": mautic.NewTrackingHash(), "tokens": "a:0:{}", "details": details})
	return err
}

// PushStat inserts a push_notification_stats row sent at sent.
func (s *Seeder) PushStat(ctx context.Context, contactID, notificationID int64, sent time.Time) error {
	_, err := s.insert(ctx, "push_notification_stats", map[string]any{"notification_id": notificationID, "lead_id": contactID,
		"date_sent": sent.UTC(), "is_clicked": false, "retry_count": 0, "tokens": "a:0:{}"})
	return err
}

// PushID inserts a push_ids row.
func (s *Seeder) PushID(ctx context.Context, contactID int64, playerID string, mobile bool) error {
	_, err := s.insert(ctx, "push_ids", map[string]any{"push_id": playerID, "lead_id": contactID, "enabled": true, "mobile": mobile})
	return err
}

// Campaign inserts a campaign with one "Send a webhook" event and returns
// both ids (the event id is what message_queue.event_id references).
func (s *Seeder) Campaign(ctx context.Context, name string) (campaignID, eventID int64, err error) {
	now := s.Now()
	campaignID, err = s.insert(ctx, "campaigns", map[string]any{"is_published": true, "date_added": now, "name": name,
		"allow_restart": false, "canvas_settings": "a:0:{}"})
	if err != nil {
		return 0, 0, err
	}
	eventID, err = s.insert(ctx, "campaign_events", map[string]any{"campaign_id": campaignID, "name": "Send marketing message",
		"type": "campaign.sendwebhook", "event_type": "action", "event_order": 1, "properties": "a:0:{}", "trigger_mode": "immediate",
		"failed_count": 0})
	return campaignID, eventID, err
}

// Integration inserts a plugin_integration_settings row whose api_keys are
// encrypted with secretKey, as Mautic stores them.
func (s *Seeder) Integration(ctx context.Context, name string, published bool, secretKey string, keys map[string]string,
	features []string, settings map[string]any) error {
	enc := map[string]string{}
	for k, v := range keys {
		c, err := mautic.Encrypt(secretKey, v)
		if err != nil {
			return err
		}
		enc[k] = c
	}
	apiKeys, err := mautic.Serialize(enc)
	if err != nil {
		return err
	}
	if features == nil {
		features = []string{}
	}
	feat, err := mautic.Serialize(features)
	if err != nil {
		return err
	}
	if settings == nil {
		settings = map[string]any{}
	}
	set, err := mautic.Serialize(settings)
	if err != nil {
		return err
	}
	_, err = s.insert(ctx, "plugin_integration_settings", map[string]any{"name": name, "is_published": published,
		"supported_features": string(feat), "api_keys": string(apiKeys), "feature_settings": string(set)})
	return err
}
