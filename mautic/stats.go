package mautic

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// SourceCampaignEvent is the stats source Mautic writes for campaign sends.
const SourceCampaignEvent = "campaign.event"

// Source is the (source, source_id) pair of a stats row: "campaign.event"
// and the campaign event id when the send came from a campaign event, both
// NULL otherwise (DESIGN.md 6.6).
type Source struct {
	EventID int64 // 0: no event
}

func (s Source) args() (any, any) {
	if s.EventID <= 0 {
		return nil, nil
	}
	return SourceCampaignEvent, s.EventID
}

// NewTrackingHash returns a fresh id hash shaped like Mautic's
// (uniqid(”, true) without the dot: 13 hex digits of time and 9 decimal
// digits), unique enough across replicas thanks to its random part.
func NewTrackingHash() string {
	now := time.Now()
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := binary.BigEndian.Uint64(b[:]) % 1_000_000_000
	return fmt.Sprintf("%08x%05x%09d", now.Unix(), now.Nanosecond()/1000, r)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(v int64) any {
	if v <= 0 {
		return nil
	}
	return v
}

func nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// insertRows runs one multi-row INSERT of the given columns.
func insertRows(ctx context.Context, e Execer, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	one := "(" + inPlaceholders(len(cols)) + ")"
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(table)
	sb.WriteString(" (")
	sb.WriteString(strings.Join(cols, ", "))
	sb.WriteString(") VALUES ")
	args := make([]any, 0, len(rows)*len(cols))
	for i, r := range rows {
		if len(r) != len(cols) {
			return fmt.Errorf("insert into %s: row %d has %d values for %d columns", table, i, len(r), len(cols))
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(one)
		args = append(args, r...)
	}
	if _, err := e.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// EmailStat is an email_stats row for one send.
type EmailStat struct {
	EmailID      int64
	ContactID    int64
	EmailAddress string
	DateSent     time.Time
	TrackingHash string
	Source       Source
	// Tokens are the tokens used for this send, stored PHP-serialized.
	Tokens map[string]string
	CopyID string
}

var emailStatCols = []string{"email_id", "lead_id", "email_address", "list_id", "ip_id", "date_sent", "is_read", "is_failed",
	"viewed_in_browser", "date_read", "tracking_hash", "retry_count", "source", "source_id", "tokens", "copy_id",
	"open_count", "last_opened", "open_details"}

// InsertEmailStats writes email_stats rows as Mautic does on a send.
func (db *DB) InsertEmailStats(ctx context.Context, e Execer, stats []EmailStat) error {
	rows := make([][]any, 0, len(stats))
	for _, s := range stats {
		tokens, err := Serialize(s.Tokens)
		if err != nil {
			return fmt.Errorf("email stat tokens: %w", err)
		}
		if s.Tokens == nil {
			tokens = []byte("a:0:{}")
		}
		src, srcID := s.Source.args()
		rows = append(rows, []any{nullInt(s.EmailID), nullInt(s.ContactID), s.EmailAddress, nil, nil, mautic0(s.DateSent), false, false,
			false, nil, nullString(s.TrackingHash), 0, src, srcID, string(tokens), nullString(s.CopyID), 0, nil, "a:0:{}"})
	}
	return insertRows(ctx, e, db.T("email_stats"), emailStatCols, rows)
}

// EmailCopy is an email_copies row: the stored content of a send.
type EmailCopy struct {
	ID       string
	Created  time.Time
	Subject  string
	Body     string
	BodyText string
}

// EmailCopyID returns email_copies.id for a content: the md5 of the subject
// concatenated with the HTML body before per-contact token replacement.
func EmailCopyID(subject, html string) string {
	h := md5.New()
	io.WriteString(h, subject)
	io.WriteString(h, html)
	return hex.EncodeToString(h.Sum(make([]byte, 0, md5.Size)))
}

// InsertEmailCopies writes email_copies rows, once per distinct content
// (rows that already exist are left alone).
func (db *DB) InsertEmailCopies(ctx context.Context, e Execer, copies []EmailCopy) error {
	seen := map[string]bool{}
	var rows [][]any
	for _, c := range copies {
		if c.ID == "" || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		rows = append(rows, []any{c.ID, c.Created.UTC(), nullString(c.Body), nullString(c.BodyText), nullString(c.Subject)})
	}
	if len(rows) == 0 {
		return nil
	}
	// Most copies exist already (one per content): a plain read takes no
	// lock, where an upsert of an existing row would lock it until commit.
	idArgs := make([]any, len(rows))
	for i, r := range rows {
		idArgs[i] = r[0]
	}
	existing, err := e.QueryContext(ctx, "SELECT id FROM "+db.T("email_copies")+" WHERE id IN ("+inPlaceholders(len(idArgs))+")", idArgs...)
	if err != nil {
		return fmt.Errorf("insert email copies: %w", err)
	}
	have := map[string]bool{}
	for existing.Next() {
		var id string
		if err := existing.Scan(&id); err != nil {
			existing.Close()
			return fmt.Errorf("insert email copies: %w", err)
		}
		have[id] = true
	}
	existing.Close()
	missing := rows[:0]
	for _, r := range rows {
		if !have[r[0].(string)] {
			missing = append(missing, r)
		}
	}
	rows = missing
	if len(rows) == 0 {
		return nil
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0].(string) < rows[j][0].(string) })
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + db.T("email_copies") + " (id, date_created, body, body_text, subject) VALUES ")
	var args []any
	for i, r := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?)")
		args = append(args, r...)
	}
	sb.WriteString(" ON DUPLICATE KEY UPDATE id = id")
	if _, err := e.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("insert email copies: %w", err)
	}
	return nil
}

// Counter tables: the content tables whose sent_count a send increments.
const (
	CounterEmails = "emails"
	CounterSMS    = "sms_messages"
	CounterPush   = "push_notifications"
	CounterTweets = "tweets"
)

// CounterDelta is an increment of a content row's sent_count.
type CounterDelta struct {
	Table     string // one of the Counter* names
	ContentID int64
	Delta     int
}

// AddCounterDeltas records increments of Mautic's sent counters inside the
// caller's transaction (sidecar_counter_deltas); FlushCounters applies them.
// Routing transactions thus never lock the content rows themselves.
func (db *DB) AddCounterDeltas(ctx context.Context, e Execer, deltas []CounterDelta, now time.Time) error {
	var rows [][]any
	for _, d := range deltas {
		if d.ContentID > 0 && d.Delta != 0 {
			rows = append(rows, []any{d.Table, d.ContentID, d.Delta, now.UTC()})
		}
	}
	return insertRows(ctx, e, db.T("sidecar_counter_deltas"), []string{"content_table", "content_id", "delta", "created_at"}, rows)
}

// FlushCounters applies up to limit recorded increments to the content
// counters in one short transaction (emails.sent_count, and
// variant_sent_count when the email has a variant_start_date, as Mautic
// does; sms_messages, push_notifications and tweets sent_count), and
// deletes them. One flusher works at a time across replicas: a named lock,
// waited for up to wait (rounded up to whole seconds; a negative wait, which
// MySQL would read as forever, counts as 0). When another connection holds
// it that long, this call returns 0. It returns how many it applied.
func (db *DB) FlushCounters(ctx context.Context, limit int, wait time.Duration) (int, error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	defer conn.Close()
	name := "sidecar_counters:" + db.lockScope()
	var got sql.NullInt64
	if err := conn.QueryRowxContext(ctx, "SELECT GET_LOCK(?, ?)", name, max(int(math.Ceil(wait.Seconds())), 0)).Scan(&got); err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	if got.Int64 != 1 {
		return 0, nil
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", name); err != nil {
			// Never pool a connection that may still hold the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	rows, err := tx.QueryContext(ctx, "SELECT id, content_table, content_id, delta FROM "+db.T("sidecar_counter_deltas")+
		" ORDER BY id LIMIT ? FOR UPDATE", limit)
	if err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	type key struct {
		table string
		id    int64
	}
	sums := map[key]int{}
	var ids []int64
	for rows.Next() {
		var (
			id    int64
			k     key
			delta int
		)
		if err := rows.Scan(&id, &k.table, &k.id, &delta); err != nil {
			rows.Close()
			return 0, fmt.Errorf("flush counters: %w", err)
		}
		sums[k] += delta
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// Delete first: a delete by id can wait for a row next to its range
	// (another flusher's, or a routing transaction's new increment), and it
	// must not wait while holding a counter row, which routing
	// transactions' foreign-key checks need.
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+db.T("sidecar_counter_deltas")+" WHERE id IN ("+inPlaceholders(len(ids))+")",
		int64Args(ids)...); err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	keys := make([]key, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	// A stable lock order across flushers.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].table != keys[j].table {
			return keys[i].table < keys[j].table
		}
		return keys[i].id < keys[j].id
	})
	for _, k := range keys {
		n := sums[k]
		var q string
		var args []any
		switch k.table {
		case CounterEmails:
			q = "UPDATE " + db.T("emails") + " SET sent_count = COALESCE(sent_count, 0) + ?," +
				" variant_sent_count = IF(variant_start_date IS NULL, variant_sent_count, COALESCE(variant_sent_count, 0) + ?) WHERE id = ?"
			args = []any{n, n, k.id}
		case CounterSMS, CounterPush, CounterTweets:
			q = "UPDATE " + db.T(k.table) + " SET sent_count = COALESCE(sent_count, 0) + ? WHERE id = ?"
			args = []any{n, k.id}
		default:
			continue // an unknown table name: dropped with its row
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return 0, fmt.Errorf("flush counters: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("flush counters: %w", err)
	}
	return len(ids), nil
}

// SMSStat is an sms_message_stats row.
type SMSStat struct {
	SMSID        int64
	ContactID    int64
	DateSent     time.Time
	TrackingHash string
	Source       Source
	Failed       bool
	// Details is the details JSON: "[]" on success, {"failed":["<error>"]}
	// on failure (see SMSFailureDetails).
	Details string
}

// SMSFailureDetails returns the details JSON Mautic stores for a failed SMS.
func SMSFailureDetails(reason string) string {
	b, _ := jsonMarshalNoEscape(map[string][]string{"failed": {reason}})
	return string(b)
}

var smsStatCols = []string{"sms_id", "lead_id", "list_id", "ip_id", "date_sent", "is_failed", "tracking_hash", "source", "source_id", "tokens", "details"}

// InsertSMSStats writes sms_message_stats rows.
func (db *DB) InsertSMSStats(ctx context.Context, e Execer, stats []SMSStat) error {
	rows := make([][]any, 0, len(stats))
	for _, s := range stats {
		src, srcID := s.Source.args()
		details := s.Details
		if details == "" {
			details = "[]"
		}
		rows = append(rows, []any{nullInt(s.SMSID), nullInt(s.ContactID), nil, nil, mautic0(s.DateSent), s.Failed,
			nullString(s.TrackingHash), src, srcID, "a:0:{}", details})
	}
	return insertRows(ctx, e, db.T("sms_message_stats"), smsStatCols, rows)
}

// PushStat is a push_notification_stats row.
type PushStat struct {
	NotificationID int64
	ContactID      int64
	DateSent       time.Time
	Source         Source
}

var pushStatCols = []string{"notification_id", "lead_id", "list_id", "ip_id", "date_sent", "date_read", "is_clicked", "date_clicked",
	"tracking_hash", "retry_count", "source", "source_id", "tokens", "click_count", "last_clicked", "click_details"}

// InsertPushStats writes push_notification_stats rows (no tracking hash, as
// Mautic's campaign sends).
func (db *DB) InsertPushStats(ctx context.Context, e Execer, stats []PushStat) error {
	rows := make([][]any, 0, len(stats))
	for _, s := range stats {
		src, srcID := s.Source.args()
		rows = append(rows, []any{nullInt(s.NotificationID), nullInt(s.ContactID), nil, nil, mautic0(s.DateSent), nil, false, nil,
			nil, 0, src, srcID, "a:0:{}", nil, nil, nil})
	}
	return insertRows(ctx, e, db.T("push_notification_stats"), pushStatCols, rows)
}

// TweetStat is a tweet_stats row.
type TweetStat struct {
	TweetID        int64
	ContactID      int64
	Handle         string
	TwitterTweetID string
	DateSent       time.Time
	Source         Source
}

var tweetStatCols = []string{"tweet_id", "twitter_tweet_id", "lead_id", "handle", "date_sent", "is_failed", "retry_count",
	"source", "source_id", "favorite_count", "retweet_count", "response_details"}

// InsertTweetStats writes tweet_stats rows for successful tweets.
func (db *DB) InsertTweetStats(ctx context.Context, e Execer, stats []TweetStat) error {
	rows := make([][]any, 0, len(stats))
	for _, s := range stats {
		src, srcID := s.Source.args()
		rows = append(rows, []any{nullInt(s.TweetID), nullString(s.TwitterTweetID), nullInt(s.ContactID), s.Handle, mautic0(s.DateSent),
			false, 0, src, srcID, 0, 0, nil})
	}
	return insertRows(ctx, e, db.T("tweet_stats"), tweetStatCols, rows)
}

func jsonMarshalNoEscape(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(sb.String(), "\n")), nil
}

// CustomSend is a send on a custom (webhook) channel, recorded in the
// sidecar's own sidecar_sends table: the stats its frequency rules count.
type CustomSend struct {
	ContactID  int64
	Channel    string
	ChannelID  int64
	DispatchID int64
	QueueID    int64
	DateSent   time.Time
}

// InsertCustomSends writes sidecar_sends rows.
func (db *DB) InsertCustomSends(ctx context.Context, e Execer, sends []CustomSend) error {
	rows := make([][]any, 0, len(sends))
	for _, s := range sends {
		rows = append(rows, []any{s.ContactID, s.Channel, nullInt(s.ChannelID), nullInt(s.DispatchID), nullInt(s.QueueID), s.DateSent.UTC()})
	}
	return insertRows(ctx, e, db.T("sidecar_sends"), []string{"contact_id", "channel", "channel_id", "dispatch_id", "queue_id", "date_sent"}, rows)
}

// SMSStatRef identifies an sms_message_stats row.
type SMSStatRef struct {
	ID        int64
	ContactID int64
	SMSID     int64
}

// SMSStatByHash finds the sms_message_stats row with a tracking hash.
func (db *DB) SMSStatByHash(ctx context.Context, q Querier, hash string) (SMSStatRef, bool, error) {
	var (
		ref         SMSStatRef
		lead, smsID sql.NullInt64
	)
	err := q.QueryRowxContext(ctx, "SELECT id, lead_id, sms_id FROM "+db.T("sms_message_stats")+
		" WHERE tracking_hash = ? ORDER BY id LIMIT 1", hash).Scan(&ref.ID, &lead, &smsID)
	if errors.Is(err, sql.ErrNoRows) {
		return ref, false, nil
	}
	if err != nil {
		return ref, false, fmt.Errorf("find sms stat: %w", err)
	}
	ref.ContactID, ref.SMSID = lead.Int64, smsID.Int64
	return ref, true, nil
}

// MarkSMSStatFailed records a delivery failure reported after the send:
// is_failed = 1 and details {"failed":[reason]}.
func (db *DB) MarkSMSStatFailed(ctx context.Context, e Execer, id int64, reason string) error {
	if _, err := e.ExecContext(ctx, "UPDATE "+db.T("sms_message_stats")+" SET is_failed = 1, details = ? WHERE id = ?",
		SMSFailureDetails(reason), id); err != nil {
		return fmt.Errorf("mark sms stat failed: %w", err)
	}
	return nil
}

// PhoneMatch is a contact whose mobile or phone ends with given digits.
type PhoneMatch struct {
	ContactID int64
	Mobile    string
	Phone     string
}

// ContactsByPhoneDigits returns contacts whose mobile or phone, stripped of
// everything but digits, ends with digits (at least 6). Mautic stores numbers
// as typed, so callers confirm a match by normalizing the candidates. It
// scans leads: meant for rare events such as an SMS opt-out.
func (db *DB) ContactsByPhoneDigits(ctx context.Context, digits string) ([]PhoneMatch, error) {
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("contacts by phone: digits only")
		}
	}
	if len(digits) < 6 {
		return nil, fmt.Errorf("contacts by phone: at least 6 digits")
	}
	like := "%" + digits
	rows, err := db.QueryContext(ctx, "SELECT id, COALESCE(mobile, ''), COALESCE(phone, '') FROM "+db.T("leads")+
		" WHERE REGEXP_REPLACE(COALESCE(mobile, ''), '[^0-9]', '') LIKE ? OR REGEXP_REPLACE(COALESCE(phone, ''), '[^0-9]', '') LIKE ?"+
		" ORDER BY id LIMIT 1000", like, like)
	if err != nil {
		return nil, fmt.Errorf("contacts by phone: %w", err)
	}
	defer rows.Close()
	var out []PhoneMatch
	for rows.Next() {
		var m PhoneMatch
		if err := rows.Scan(&m.ContactID, &m.Mobile, &m.Phone); err != nil {
			return nil, fmt.Errorf("contacts by phone: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// mautic0 is a time as Mautic stores it in a DATETIME without fractional
// seconds: UTC, cut (not rounded) to the second, as PHP's 'Y-m-d H:i:s'
// does. Bound as a value with a fraction, MySQL would round it, possibly
// into the next second, after the moment a frequency count reads as now.
func mautic0(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
