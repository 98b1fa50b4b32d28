package mautic_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

func env(t *testing.T) (*testdb.DB, *seed.Seeder, context.Context) {
	db := testdb.New(t)
	return db, seed.New(db.DB, db.Prefix), context.Background()
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := mautic.Open(ctx, mautic.Config{DSN: "root@tcp(127.0.0.1:1)/mautic"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "127.0.0.1:1", "the error names the address")

	_, err = mautic.Open(ctx, mautic.Config{DSN: "root@tcp(127.0.0.1:3306)/mautic", Prefix: "mtc-;drop"})
	require.ErrorIs(t, err, mautic.ErrInvalidPrefix)
	require.Contains(t, err.Error(), `"mtc-;drop"`)

	_, err = mautic.Open(ctx, mautic.Config{DSN: "not a dsn"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "MAUTIC_DB_DSN")

	require.Equal(t, "u:xxxxx@tcp(h:1)/db", mautic.RedactDSN("u:secret@tcp(h:1)/db"))
}

func TestContacts(t *testing.T) {
	db, s, ctx := env(t)
	db.MustExec(t, "ALTER TABLE {p}leads ADD COLUMN loyalty_tier VARCHAR(191) NULL")
	id, err := s.Contact(ctx, seed.Contact{FirstName: "Ada", Email: "ada@example.test", Phone: "555 0100",
		Extra: map[string]any{"loyalty_tier": "gold", "points": 42}})
	require.NoError(t, err)
	_, err = s.Company(ctx, id, seed.Company{Name: "Other", Zip: "11111"}, false)
	require.NoError(t, err)
	_, err = s.Company(ctx, id, seed.Company{Name: "Mautic", Zip: "77008"}, true)
	require.NoError(t, err)
	bare, err := s.Contact(ctx, seed.Contact{})
	require.NoError(t, err)

	c, err := db.Mautic.Contact(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "Ada", c.Field("firstname"))
	require.Equal(t, "gold", c.Field("loyalty_tier"), "custom field columns are read")
	require.Equal(t, "42", c.Field("points"), "numbers come as strings, as Mautic reads them")
	require.Nil(t, c.Fields["lastname"], "NULL stays nil")
	require.Equal(t, "555 0100", c.Phone(), "phone when there is no mobile")
	require.Equal(t, "77008", *c.Company["companyzipcode"], "the primary company")
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, c.Field("date_added"))

	m, err := db.Mautic.Contacts(ctx, db.Mautic, []int64{id, bare, 999999}, true)
	require.NoError(t, err)
	require.Len(t, m, 2)
	require.Nil(t, m[bare].Company)

	_, err = db.Mautic.Contact(ctx, 999999)
	require.ErrorIs(t, err, mautic.ErrNotFound)

	ex, err := db.Mautic.ExistingContacts(ctx, db.Mautic, []int64{id, 999999, 0, -3})
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{id: true}, ex)
}

func TestMessage(t *testing.T) {
	db, s, ctx := env(t)
	id, err := s.Message(ctx, "Welcome",
		seed.Channel{Channel: "sms", ChannelID: 3},
		seed.Channel{Channel: "email", ChannelID: 7},
		seed.Channel{Channel: "tweet", Disabled: true},
		seed.Channel{Channel: "notification"},
		seed.Channel{Channel: "whatsapp", ChannelID: 1, Properties: `{"template":"hello"}`})
	require.NoError(t, err)
	m, err := db.Mautic.Message(ctx, db.Mautic, id)
	require.NoError(t, err)
	var got []string
	for _, c := range m.Channels {
		got = append(got, c.Channel)
	}
	require.Equal(t, []string{"sms", "email", "notification", "whatsapp"}, got, "enabled rows, ORDER BY id")
	require.Equal(t, int64(0), m.Channels[2].ChannelID, "NULL channel_id is 0")
	require.JSONEq(t, `{"template":"hello"}`, string(m.Channels[3].Properties))

	_, err = db.Mautic.Message(ctx, db.Mautic, id+100)
	require.ErrorIs(t, err, mautic.ErrNotFound)
}

func TestContentPublished(t *testing.T) {
	db, s, ctx := env(t)
	now := time.Now().UTC().Truncate(time.Second)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	hiddenCat, err := s.Category(ctx, "Hidden", false)
	require.NoError(t, err)
	ok, _ := s.Email(ctx, seed.Email{Subject: "s", HTML: "<p>x</p>", Headers: map[string]string{"X-Tag": "a &amp; b"}})
	unpub, _ := s.Email(ctx, seed.Email{Unpublished: true})
	early, _ := s.Email(ctx, seed.Email{PublishUp: &future})
	late, _ := s.Email(ctx, seed.Email{PublishDown: &past})
	window, _ := s.Email(ctx, seed.Email{PublishUp: &past, PublishDown: &future})
	inHidden, _ := s.Email(ctx, seed.Email{CategoryID: hiddenCat})
	emails, err := db.Mautic.Emails(ctx, db.Mautic, []int64{ok, unpub, early, late, window, inHidden})
	require.NoError(t, err)
	require.True(t, emails[ok].PublishedAt(now))
	require.Equal(t, "a & b", emails[ok].Headers["X-Tag"], "header values are HTML-entity-decoded")
	require.False(t, emails[unpub].PublishedAt(now))
	require.False(t, emails[early].PublishedAt(now))
	require.False(t, emails[late].PublishedAt(now))
	require.True(t, emails[window].PublishedAt(now))
	require.False(t, emails[inHidden].PublishedAt(now), "an unpublished category unpublishes its content")

	smsOK, _ := s.SMS(ctx, seed.SMS{Message: "hello"})
	smsLate, _ := s.SMS(ctx, seed.SMS{Message: "x", PublishDown: &past})
	sms, err := db.Mautic.SMSMessages(ctx, db.Mautic, []int64{smsOK, smsLate})
	require.NoError(t, err)
	require.True(t, sms[smsOK].PublishedAt(now))
	require.False(t, sms[smsLate].PublishedAt(now))

	web, _ := s.Push(ctx, seed.Push{Heading: "h", Message: "m", URL: "https://example.test"})
	mob, _ := s.Push(ctx, seed.Push{Heading: "h", Message: "m", Mobile: true, Unpublished: true})
	push, err := db.Mautic.PushNotifications(ctx, db.Mautic, []int64{web, mob})
	require.NoError(t, err)
	require.False(t, push[web].Mobile)
	require.True(t, push[web].IsPublished)
	require.True(t, push[mob].Mobile)
	require.False(t, push[mob].IsPublished)

	tw, err := s.Tweet(ctx, "t", "Hello {contactfield=firstname}", true)
	require.NoError(t, err)
	tweets, err := db.Mautic.Tweets(ctx, db.Mautic, []int64{tw})
	require.NoError(t, err)
	require.Equal(t, "Hello {contactfield=firstname}", tweets[tw].Text)
}

func TestPreferencesAndDNC(t *testing.T) {
	db, s, ctx := env(t)
	c, _ := s.Contact(ctx, seed.Contact{Email: "a@example.test"})
	from, to := time.Now().Add(-time.Hour).UTC().Truncate(time.Second), time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	_, err := s.Rule(ctx, seed.Rule{ContactID: c, Channel: "email", Limit: limit(2, mautic.Week), Preferred: true, PauseFrom: &from, PauseTo: &to})
	require.NoError(t, err)
	_, err = s.Rule(ctx, seed.Rule{ContactID: c, Channel: "sms"})
	require.NoError(t, err)
	rules, err := db.Mautic.FrequencyRules(ctx, db.Mautic, []int64{c})
	require.NoError(t, err)
	require.Len(t, rules[c], 2)
	r := rules[c][0]
	require.True(t, r.Numeric())
	require.True(t, r.Preferred)
	require.True(t, r.PausedAt(time.Now()))
	require.True(t, r.PausedAt(to), "the end of a pause is inclusive")
	require.False(t, r.PausedAt(to.Add(time.Second)))
	require.False(t, rules[c][1].Numeric())

	require.NoError(t, s.PushID(ctx, c, "player-web", false))
	require.NoError(t, s.PushID(ctx, c, "player-app", true))
	ids, err := db.Mautic.PushIDs(ctx, db.Mautic, []int64{c})
	require.NoError(t, err)
	require.Len(t, ids[c], 2)

	// DNC: a new row, then an update of its reason, but never over reason 1.
	add := func(ch string, reason mautic.DNCReason) bool {
		wrote, err := db.Mautic.AddDoNotContact(ctx, db.Mautic, mautic.DNC{ContactID: c, Channel: ch, ChannelID: 4, Reason: reason, Comments: "test"})
		require.NoError(t, err)
		return wrote
	}
	require.True(t, add("email", mautic.DNCBounced))
	require.False(t, add("email", mautic.DNCBounced), "same reason: nothing to write")
	require.True(t, add("email", mautic.DNCManual))
	require.True(t, add("sms", mautic.DNCUnsubscribed))
	require.False(t, add("sms", mautic.DNCBounced), "reason 1 (unsubscribed) is never overwritten")
	dnc, err := db.Mautic.DoNotContact(ctx, db.Mautic, []int64{c})
	require.NoError(t, err)
	require.Len(t, dnc[c], 2)
	require.Equal(t, mautic.DNCManual, dnc[c][0].Reason)
	require.Equal(t, mautic.DNCUnsubscribed, dnc[c][1].Reason)
	require.Equal(t, int64(4), dnc[c][0].ChannelID)
}

func TestStatsWrites(t *testing.T) {
	db, s, ctx := env(t)
	c, _ := s.Contact(ctx, seed.Contact{Email: "a@example.test"})
	_, eventID, err := s.Campaign(ctx, "c")
	require.NoError(t, err)
	variant := time.Now().Add(-time.Hour)
	email, _ := s.Email(ctx, seed.Email{Subject: "Hi", HTML: "<p>Hi</p>", VariantStart: &variant})
	plain, _ := s.Email(ctx, seed.Email{Subject: "Plain"})
	smsID, _ := s.SMS(ctx, seed.SMS{Message: "m"})
	push, _ := s.Push(ctx, seed.Push{Heading: "h", Message: "m"})
	tweet, _ := s.Tweet(ctx, "t", "x", true)
	now := time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC)

	tx := db.MustBegin()
	m := db.Mautic
	copyID := mautic.EmailCopyID("Hi", "<p>Hi</p>")
	require.Len(t, copyID, 32)
	require.NoError(t, m.InsertEmailCopies(ctx, tx, []mautic.EmailCopy{{ID: copyID, Created: now, Subject: "Hi", Body: "<p>Hi</p>"}, {ID: copyID}}))
	require.NoError(t, m.InsertEmailCopies(ctx, tx, []mautic.EmailCopy{{ID: copyID, Created: now}}), "an existing copy is left alone")
	require.NoError(t, m.InsertEmailStats(ctx, tx, []mautic.EmailStat{
		{EmailID: email, ContactID: c, EmailAddress: "a@example.test", DateSent: now, TrackingHash: "hash1", Source: mautic.Source{EventID: eventID},
			Tokens: map[string]string{"{unsubscribe_url}": "https://m.example/u"}, CopyID: copyID},
		{EmailID: plain, ContactID: c, EmailAddress: "a@example.test", DateSent: now, TrackingHash: "hash2"},
	}))
	require.NoError(t, m.AddCounterDeltas(ctx, tx, []mautic.CounterDelta{{Table: mautic.CounterEmails, ContentID: email, Delta: 1},
		{Table: mautic.CounterEmails, ContentID: plain, Delta: 2}}, now))
	require.NoError(t, m.InsertSMSStats(ctx, tx, []mautic.SMSStat{
		{SMSID: smsID, ContactID: c, DateSent: now, TrackingHash: "s1"},
		{SMSID: smsID, ContactID: c, DateSent: now, TrackingHash: "s2", Failed: true, Details: mautic.SMSFailureDetails(`21211 "bad" number`)},
	}))
	require.NoError(t, m.AddCounterDeltas(ctx, tx, []mautic.CounterDelta{{Table: mautic.CounterSMS, ContentID: smsID, Delta: 1}}, now))
	require.NoError(t, m.InsertPushStats(ctx, tx, []mautic.PushStat{{NotificationID: push, ContactID: c, DateSent: now, Source: mautic.Source{EventID: eventID}}}))
	require.NoError(t, m.AddCounterDeltas(ctx, tx, []mautic.CounterDelta{{Table: mautic.CounterPush, ContentID: push, Delta: 1}}, now))
	require.NoError(t, m.InsertTweetStats(ctx, tx, []mautic.TweetStat{{TweetID: tweet, ContactID: c, Handle: "@ada", TwitterTweetID: "123", DateSent: now}}))
	require.NoError(t, m.AddCounterDeltas(ctx, tx, []mautic.CounterDelta{{Table: mautic.CounterTweets, ContentID: tweet, Delta: 1}}, now))
	require.NoError(t, tx.Commit())
	require.Equal(t, 5, db.Count(t, "sidecar_counter_deltas", ""), "increments wait for the flush")
	require.Equal(t, 1, db.Count(t, "emails", "id = ? AND sent_count = 0", email))
	n, err := m.FlushCounters(ctx, 2, 0)
	require.NoError(t, err)
	require.Equal(t, 2, n, "at most the limit per call")
	n, err = m.FlushCounters(ctx, 100, 0)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 0, db.Count(t, "sidecar_counter_deltas", ""))

	var row struct {
		Source, Tokens, CopyID, OpenDetails string
		SourceID                            int64
		Generated                           time.Time
		IsRead, IsFailed                    bool
	}
	require.NoError(t, db.QueryRowx(db.Fmt("SELECT source, source_id, tokens, copy_id, open_details, generated_sent_date, is_read, is_failed FROM {p}email_stats WHERE tracking_hash = 'hash1'")).
		Scan(&row.Source, &row.SourceID, &row.Tokens, &row.CopyID, &row.OpenDetails, &row.Generated, &row.IsRead, &row.IsFailed))
	require.Equal(t, "campaign.event", row.Source)
	require.Equal(t, eventID, row.SourceID)
	require.Equal(t, `a:1:{s:17:"{unsubscribe_url}";s:19:"https://m.example/u";}`, row.Tokens)
	require.Equal(t, copyID, row.CopyID)
	require.Equal(t, "a:0:{}", row.OpenDetails)
	require.Equal(t, "2026-05-01", row.Generated.Format("2006-01-02"), "the generated column is computed by the server")
	require.Equal(t, 1, db.Count(t, "email_stats", "tracking_hash = 'hash2' AND source IS NULL AND source_id IS NULL AND tokens = 'a:0:{}'"))

	var sent, variantSent int
	require.NoError(t, db.QueryRowx(db.Fmt("SELECT sent_count, variant_sent_count FROM {p}emails WHERE id = ?"), email).Scan(&sent, &variantSent))
	require.Equal(t, []int{1, 1}, []int{sent, variantSent})
	require.NoError(t, db.QueryRowx(db.Fmt("SELECT sent_count, variant_sent_count FROM {p}emails WHERE id = ?"), plain).Scan(&sent, &variantSent))
	require.Equal(t, []int{2, 0}, []int{sent, variantSent}, "variant_sent_count only with a variant_start_date")

	var details string
	require.NoError(t, db.QueryRowx(db.Fmt("SELECT details FROM {p}sms_message_stats WHERE tracking_hash = 's2' AND is_failed = 1")).Scan(&details))
	require.JSONEq(t, `{"failed":["21211 \"bad\" number"]}`, details)
	require.Equal(t, 1, db.Count(t, "sms_message_stats", "tracking_hash = 's1' AND is_failed = 0 AND details = '[]'"))
	require.Equal(t, 1, db.Count(t, "sms_messages", "sent_count = 1"))
	require.Equal(t, 1, db.Count(t, "push_notification_stats", "source = 'campaign.event' AND tracking_hash IS NULL"))
	require.Equal(t, 1, db.Count(t, "push_notifications", "sent_count = 1"))
	require.Equal(t, 1, db.Count(t, "tweet_stats", "handle = '@ada' AND twitter_tweet_id = '123'"))
	require.Equal(t, 1, db.Count(t, "email_copies", ""))

	ref, ok, err := m.SMSStatByHash(ctx, m, "s1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, c, ref.ContactID)
	require.NoError(t, m.MarkSMSStatFailed(ctx, m, ref.ID, "undelivered"))
	require.Equal(t, 1, db.Count(t, "sms_message_stats", "tracking_hash = 's1' AND is_failed = 1"))

	h := mautic.NewTrackingHash()
	require.Regexp(t, `^[0-9a-f]{13}[0-9]{9}$`, h, "shaped like Mautic's uniqid hash")
	require.NotEqual(t, h, mautic.NewTrackingHash())
}

func TestMessageQueue(t *testing.T) {
	db, s, ctx := env(t)
	m := db.Mautic
	c1, _ := s.Contact(ctx, seed.Contact{Email: "1@example.test"})
	c2, _ := s.Contact(ctx, seed.Contact{Email: "2@example.test"})
	_, eventID, err := s.Campaign(ctx, "c")
	require.NoError(t, err)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

	id1, err := m.Enqueue(ctx, m, mautic.NewQueueRow{Channel: "email", ChannelID: 5, EventID: eventID, ContactID: c1, ScheduledDate: now.Add(-time.Minute), Now: now})
	require.NoError(t, err)
	id2, err := m.Enqueue(ctx, m, mautic.NewQueueRow{Channel: "sms", ChannelID: 6, ContactID: c2, ScheduledDate: now.Add(-2 * time.Minute), Now: now})
	require.NoError(t, err)
	_, err = m.Enqueue(ctx, m, mautic.NewQueueRow{Channel: "email", ChannelID: 5, ContactID: c2, ScheduledDate: now.Add(time.Hour), Now: now})
	require.NoError(t, err)

	rows, err := m.QueueRows(ctx, m, []int64{id1})
	require.NoError(t, err)
	r := rows[id1]
	require.Equal(t, []any{2, 3, 0, false, "pending", eventID, "a:1:{i:0;a:0:{}}"},
		[]any{r.Priority, r.MaxAttempts, r.Attempts, r.Success, r.Status, r.EventID, r.Options}, "the values Mautic writes")
	require.Nil(t, r.LastAttempt)

	p, ok, err := m.PendingQueueRow(ctx, m, c1, "email", 5)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, id1, p.ID)
	_, ok, err = m.PendingQueueRow(ctx, m, c1, "email", 6)
	require.NoError(t, err)
	require.False(t, ok)

	// Two transactions claim different rows: SKIP LOCKED.
	tx1 := db.MustBegin()
	a, err := m.ClaimDueQueueRows(ctx, tx1, []string{"email", "sms"}, time.Time{}, now, 1)
	require.NoError(t, err)
	require.Len(t, a, 1)
	require.Equal(t, id2, a[0].ID, "oldest scheduled first")
	tx2 := db.MustBegin()
	b, err := m.ClaimDueQueueRows(ctx, tx2, []string{"email", "sms"}, time.Time{}, now, 5)
	require.NoError(t, err)
	require.Len(t, b, 1, "the future row is not due; the locked one is skipped")
	require.Equal(t, id1, b[0].ID)
	require.NoError(t, tx2.Rollback())
	require.NoError(t, tx1.Rollback())

	var plan string
	require.NoError(t, db.QueryRowx(db.Fmt("EXPLAIN FORMAT=JSON SELECT id FROM {p}message_queue WHERE scheduled_date >= ? AND scheduled_date <= ? AND success = 0"+
		" AND attempts < max_attempts AND channel IN ('email') ORDER BY scheduled_date, id LIMIT 10"), now.Add(-time.Hour), now).Scan(&plan))
	require.NotContains(t, plan, "filesort", "the claim follows the scheduled_date index")

	require.NoError(t, m.MarkQueueFailed(ctx, m, []int64{id1}, now))
	rows, _ = m.QueueRows(ctx, m, []int64{id1})
	require.Equal(t, 1, rows[id1].Attempts)
	require.Equal(t, "rescheduled", rows[id1].Status)
	require.Equal(t, now.Add(-time.Minute+15*time.Minute), *rows[id1].ScheduledDate, "scheduled_date + 15 minutes, not now + 15")
	require.Equal(t, now, *rows[id1].LastAttempt)

	to := now.Add(24 * time.Hour)
	require.NoError(t, m.RescheduleQueueRow(ctx, m, id1, to, now))
	require.NoError(t, m.MarkQueueSent(ctx, m, []int64{id2}, now))
	rows, _ = m.QueueRows(ctx, m, []int64{id1, id2})
	require.Equal(t, 2, rows[id1].Attempts)
	require.Equal(t, to, *rows[id1].ScheduledDate)
	require.True(t, rows[id2].Success)
	require.Equal(t, "sent", rows[id2].Status)
	require.Equal(t, now, *rows[id2].DateSent)
	require.False(t, rows[id2].Pending())

	require.NoError(t, m.MarkQueueCancelled(ctx, m, []int64{id1}, now))
	rows, _ = m.QueueRows(ctx, m, []int64{id1})
	require.Equal(t, "cancelled", rows[id1].Status)
	require.True(t, rows[id1].Success)

	floor, err := m.PendingQueueFloor(ctx, m, []string{"email", "sms"})
	require.NoError(t, err)
	require.Equal(t, now.Add(time.Hour), floor, "the earliest pending row; sent and cancelled rows do not count")
	pending, due, err := m.QueueDepth(ctx, m, []string{"email", "sms"}, now)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 0}, []int64{pending, due})
}

func TestIntegrationKeys(t *testing.T) {
	db, s, ctx := env(t)
	const secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	require.NoError(t, s.Integration(ctx, "Twilio", true, secret, map[string]string{"username": "AC123", "password": "tok-secret"},
		nil, map[string]any{"messaging_service_sid": "MG1"}))
	in, err := db.Mautic.Integration(ctx, "Twilio", secret)
	require.NoError(t, err)
	require.True(t, in.IsPublished)
	require.Equal(t, "AC123", in.APIKeys["username"])
	require.Equal(t, "tok-secret", in.APIKeys["password"])
	require.Equal(t, "MG1", in.FeatureSettings["messaging_service_sid"])

	_, err = db.Mautic.Integration(ctx, "Twilio", strings.Repeat("ab", 32))
	require.Error(t, err, "a wrong secret key")
	require.Contains(t, err.Error(), "api key")
	require.NotContains(t, err.Error(), "tok-secret")
	require.NotContains(t, err.Error(), secret)

	_, err = db.Mautic.Integration(ctx, "OneSignal", secret)
	require.ErrorIs(t, err, mautic.ErrNotFound)

	// The reference's own vector, stored as Mautic stores it.
	const stored = "NW5SeEJsdDl5N3VTUHVOeUoyMisxTG5YS1NJMytwQkVoWFFnbGlJaElic3k1OUpqaHF1MndZbmx4UURYaHhQQVpTelpyN05vT1krNFBrbnU5L1dLSUhqVGwweDJSNHBsTHVrbzNJWjNWczZpZkFkaXBPK1MycTNOZmtmTWtMOGg=|MTIzNDU2Nzg5MGFiY2RlZg=="
	db.MustExec(t, "INSERT INTO {p}plugin_integration_settings (name, is_published, supported_features, api_keys, feature_settings) VALUES ('Vector', 1, 'a:0:{}', ?, 'a:0:{}')",
		`a:1:{s:8:"username";s:197:"`+stored+`";}`)
	in, err = db.Mautic.Integration(ctx, "Vector", secret)
	require.NoError(t, err)
	require.Equal(t, "AC0123456789abcdef", in.APIKeys["username"])

	db.MustExec(t, "INSERT INTO {p}plugin_integration_settings (name, is_published, supported_features, api_keys, feature_settings) VALUES ('Broken', 1, 'a:0:{}', 'a:1:{s:1:\"x\";', 'a:0:{}')")
	_, err = db.Mautic.Integration(ctx, "Broken", secret)
	require.Error(t, err)
	require.Contains(t, err.Error(), "api_keys")
}

func TestCheckSchema(t *testing.T) {
	db, _, ctx := env(t)
	problems, err := db.Mautic.CheckSchema(ctx)
	require.NoError(t, err)
	require.Empty(t, problems, "the test schema has everything")

	db.MustExec(t, "ALTER TABLE {p}message_queue DROP COLUMN options")
	db.MustExec(t, "DROP TABLE {p}tweet_stats")
	db.MustExec(t, "SET FOREIGN_KEY_CHECKS = 0")
	db.MustExec(t, "DROP TABLE {p}lead_frequencyrules")
	problems, err = db.Mautic.CheckSchema(ctx)
	require.NoError(t, err)
	var text []string
	for _, p := range problems {
		text = append(text, p.String())
	}
	require.Contains(t, text, "missing column "+db.Prefix+"message_queue.options")
	require.Contains(t, text, "missing table "+db.Prefix+"lead_frequencyrules")
	require.Contains(t, text, "missing table "+db.Prefix+"tweet_stats (optional: tweets are unavailable)")
	require.False(t, mautic.HasTweets(problems))

	si, err := db.Mautic.Server(ctx)
	require.NoError(t, err)
	require.True(t, si.SkipLocked(), "the test server supports SKIP LOCKED (%s)", si)
}

func TestServerVersions(t *testing.T) {
	for v, want := range map[string]bool{
		"10.11.19-MariaDB-0+deb12u1": true, "10.5.22-MariaDB": false, "10.6.0-MariaDB": true, "11.4.2-MariaDB": true,
		"5.5.5-10.6.12-MariaDB": true, "8.0.36": true, "8.0.0": false, "5.7.44-log": false, "8.4.0": true,
	} {
		si, err := mautic.ParseServerVersion(v)
		require.NoError(t, err, v)
		require.Equal(t, want, si.SkipLocked(), v)
	}
	_, err := mautic.ParseServerVersion("garbage")
	require.Error(t, err)
}

func TestSchemaStatementsPrefix(t *testing.T) {
	_, err := mautic.SchemaStatements("bad prefix")
	require.True(t, errors.Is(err, mautic.ErrInvalidPrefix))
	st, err := mautic.SchemaStatements("zz_")
	require.NoError(t, err)
	for _, s := range st {
		require.NotContains(t, s, "{prefix}")
	}
	require.Contains(t, mautic.SchemaTables(), "message_queue")
}

// TestFlushCountersWaitsForTheLock: a flusher that finds the flusher's lock
// held applies nothing when it may not wait, and applies everything once
// the holder lets go when it may (the last flush at a stop, after a flush
// whose connection was closed under it while the server still held its
// lock).
func TestFlushCountersWaitsForTheLock(t *testing.T) {
	db, s, ctx := env(t)
	email, err := s.Email(ctx, seed.Email{Subject: "s"})
	require.NoError(t, err)
	m := db.Mautic
	require.NoError(t, m.AddCounterDeltas(ctx, m, []mautic.CounterDelta{{Table: mautic.CounterEmails, ContentID: email, Delta: 3}}, time.Now()))

	holder, err := db.Connx(ctx)
	require.NoError(t, err)
	defer holder.Close()
	var schema string
	require.NoError(t, holder.GetContext(ctx, &schema, "SELECT DATABASE()"))
	name := "sidecar_counters:" + schema + "/" + db.Prefix // the flusher's lock (mautic.DB.lockScope)
	var got int
	require.NoError(t, holder.GetContext(ctx, &got, "SELECT GET_LOCK(?, 0)", name))
	require.Equal(t, 1, got)

	n, err := m.FlushCounters(ctx, 100, 0)
	require.NoError(t, err)
	require.Zero(t, n, "another connection holds the lock: nothing applied")
	require.Equal(t, 1, db.Count(t, "sidecar_counter_deltas", ""))

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := m.FlushCounters(ctx, 100, 10*time.Second)
		done <- result{n, err}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		err := holder.GetContext(ctx, &waiting, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT GET_LOCK(%' AND ID <> CONNECTION_ID()", schema)
		return err == nil && waiting > 0
	}, 10*time.Second, 10*time.Millisecond, "the flusher waits for the lock")
	require.NoError(t, holder.GetContext(ctx, &got, "SELECT RELEASE_LOCK(?)", name))
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, 1, r.n)
	require.Equal(t, 0, db.Count(t, "sidecar_counter_deltas", ""))
	require.Equal(t, 1, db.Count(t, "emails", "id = ? AND sent_count = 3", email))
}

// TestFlushCountersConcurrently: flushers on several connections (replicas)
// apply every increment exactly once.
func TestFlushCountersConcurrently(t *testing.T) {
	db, s, ctx := env(t)
	email, err := s.Email(ctx, seed.Email{Subject: "s"})
	require.NoError(t, err)
	m := db.Mautic
	done := make(chan struct{})
	flushed := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			for {
				select {
				case <-done:
					_, err := m.FlushCounters(ctx, 50, 0)
					flushed <- err
					return
				default:
					if _, err := m.FlushCounters(ctx, 50, 0); err != nil {
						flushed <- err
						return
					}
				}
			}
		}()
	}
	const writes = 200
	for i := 0; i < writes; i++ {
		require.NoError(t, m.AddCounterDeltas(ctx, m, []mautic.CounterDelta{{Table: mautic.CounterEmails, ContentID: email, Delta: 1}}, time.Now()))
	}
	close(done)
	for i := 0; i < 3; i++ {
		require.NoError(t, <-flushed)
	}
	for {
		n, err := m.FlushCounters(ctx, 1000, 0)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	require.Equal(t, 1, db.Count(t, "emails", "id = ? AND sent_count = ?", email, writes))
}
