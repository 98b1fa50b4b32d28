package mautic

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"html"
	"time"
)

// Publishing holds the "form entity" publish columns of a content row and
// its category's state.
type Publishing struct {
	IsPublished bool
	PublishUp   *time.Time
	PublishDown *time.Time
	// CategoryUnpublished is true when the row has a category whose
	// is_published is 0 (Mautic's published rule checks the category too).
	CategoryUnpublished bool
}

// PublishedAt applies Mautic's rule for emails and SMS (mautic-reference.md
// 3.4): is_published = 1, publish_up NULL or <= now, publish_down NULL or
// > now, and the category, if any, published.
func (p Publishing) PublishedAt(now time.Time) bool {
	if !p.IsPublished || p.CategoryUnpublished {
		return false
	}
	if p.PublishUp != nil && p.PublishUp.After(now) {
		return false
	}
	if p.PublishDown != nil && !p.PublishDown.After(now) {
		return false
	}
	return true
}

// Email is an emails row, as far as a send needs it.
type Email struct {
	ID               int64
	Name             string
	Subject          string
	CustomHTML       string
	PlainText        string
	PreheaderText    string
	FromAddress      string
	FromName         string
	ReplyTo          string
	BCC              string
	Headers          map[string]string // HTML-entity-decoded values
	Lang             string
	VariantStartDate *time.Time
	Publishing
}

// SMS is an sms_messages row.
type SMS struct {
	ID      int64
	Name    string
	Message string
	Publishing
}

// Push is a push_notifications row.
type Push struct {
	ID             int64
	Name           string
	Heading        string
	Message        string
	URL            string
	Button         string
	Mobile         bool
	MobileSettings map[string]any
	// IsPublished is the only publish check Mautic makes for notifications.
	IsPublished bool
}

// Tweet is a tweets row.
type Tweet struct {
	ID          int64
	Name        string
	Text        string
	IsPublished bool
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// Emails loads emails rows by id (missing ids are absent).
func (db *DB) Emails(ctx context.Context, q Querier, ids []int64) (map[int64]Email, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]Email, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query := "SELECT e.id, e.name, e.subject, e.custom_html, e.plain_text, e.preheader_text, e.from_address, e.from_name," +
		" e.reply_to_address, e.bcc_address, e.headers, e.lang, e.variant_start_date, e.is_published, e.publish_up, e.publish_down," +
		" COALESCE(c.is_published, 1) FROM " + db.T("emails") + " e LEFT JOIN " + db.T("categories") +
		" c ON c.id = e.category_id WHERE e.id IN (" + inPlaceholders(len(ids)) + ")"
	rows, err := q.QueryContext(ctx, query, int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load emails: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e                                                    Email
			subject, body, text, pre, from, fromName, reply, bcc sql.NullString
			headers, lang                                        sql.NullString
			variant, up, down                                    sql.NullTime
			catPublished                                         bool
		)
		if err := rows.Scan(&e.ID, &e.Name, &subject, &body, &text, &pre, &from, &fromName, &reply, &bcc, &headers,
			&lang, &variant, &e.IsPublished, &up, &down, &catPublished); err != nil {
			return nil, fmt.Errorf("load emails: %w", err)
		}
		e.Subject, e.CustomHTML, e.PlainText, e.PreheaderText = subject.String, body.String, text.String, pre.String
		e.FromAddress, e.FromName, e.ReplyTo, e.BCC, e.Lang = from.String, fromName.String, reply.String, bcc.String, lang.String
		e.VariantStartDate, e.PublishUp, e.PublishDown = nullTime(variant), nullTime(up), nullTime(down)
		e.CategoryUnpublished = !catPublished
		e.Headers = decodeHeaders(headers.String)
		out[e.ID] = e
	}
	return out, rows.Err()
}

// decodeHeaders reads emails.headers (a JSON object of header → value);
// Mautic HTML-entity-decodes the values before use. Anything that is not an
// object of strings yields no headers.
func decodeHeaders(s string) map[string]string {
	if s == "" {
		return nil
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil || len(raw) == 0 {
		return nil
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if str, ok := v.(string); ok && k != "" {
			out[html.UnescapeString(k)] = html.UnescapeString(str)
		}
	}
	return out
}

// SMSMessages loads sms_messages rows by id.
func (db *DB) SMSMessages(ctx context.Context, q Querier, ids []int64) (map[int64]SMS, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]SMS, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	query := "SELECT s.id, s.name, s.message, s.is_published, s.publish_up, s.publish_down, COALESCE(c.is_published, 1) FROM " +
		db.T("sms_messages") + " s LEFT JOIN " + db.T("categories") + " c ON c.id = s.category_id WHERE s.id IN (" +
		inPlaceholders(len(ids)) + ")"
	rows, err := q.QueryContext(ctx, query, int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load sms messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			s            SMS
			up, down     sql.NullTime
			catPublished bool
		)
		if err := rows.Scan(&s.ID, &s.Name, &s.Message, &s.IsPublished, &up, &down, &catPublished); err != nil {
			return nil, fmt.Errorf("load sms messages: %w", err)
		}
		s.PublishUp, s.PublishDown, s.CategoryUnpublished = nullTime(up), nullTime(down), !catPublished
		out[s.ID] = s
	}
	return out, rows.Err()
}

// PushNotifications loads push_notifications rows by id.
func (db *DB) PushNotifications(ctx context.Context, q Querier, ids []int64) (map[int64]Push, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]Push, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id, name, heading, message, url, button, mobile, mobile_settings, is_published FROM "+
		db.T("push_notifications")+" WHERE id IN ("+inPlaceholders(len(ids))+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load push notifications: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			p                     Push
			url, button, settings sql.NullString
		)
		if err := rows.Scan(&p.ID, &p.Name, &p.Heading, &p.Message, &url, &button, &p.Mobile, &settings, &p.IsPublished); err != nil {
			return nil, fmt.Errorf("load push notifications: %w", err)
		}
		p.URL, p.Button = url.String, button.String
		if settings.String != "" {
			// A corrupt mobile_settings value is not fatal for a send: the
			// platform settings are optional extras.
			if v, err := Unserialize([]byte(settings.String)); err == nil {
				if a, ok := v.(*Array); ok {
					p.MobileSettings = a.Map()
				}
			}
		}
		out[p.ID] = p
	}
	return out, rows.Err()
}

// Tweets loads tweets rows by id.
func (db *DB) Tweets(ctx context.Context, q Querier, ids []int64) (map[int64]Tweet, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]Tweet, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id, name, text, is_published FROM "+db.T("tweets")+" WHERE id IN ("+
		inPlaceholders(len(ids))+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load tweets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t Tweet
		if err := rows.Scan(&t.ID, &t.Name, &t.Text, &t.IsPublished); err != nil {
			return nil, fmt.Errorf("load tweets: %w", err)
		}
		out[t.ID] = t
	}
	return out, rows.Err()
}
