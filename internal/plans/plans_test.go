package plans_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/plans"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

// surveyContacts is the size of the test's dataset: small enough to seed
// in seconds, big enough (with ANALYZE) that the optimizer reads a batch's
// rows through indexes, as it does with real sizes.
const surveyContacts = 5000

// TestHotReadPlans is the regression test of the hot reads' plans: on a
// seeded dataset, none of them scans a table of more than a thousand rows,
// and neither claim sorts. A new read in the routing or queue path belongs
// in plans.Survey, and then here.
func TestHotReadPlans(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	// The batch runs at a time with nanoseconds, as the sidecar's clock
	// gives it: the arguments must be bound so that indexes still apply.
	now := time.Now().UTC()
	b := seedSurvey(t, db, now)

	got, err := plans.Run(ctx, plans.Target{DB: db.DB, DSN: db.DSN, Prefix: db.Prefix}, b, plans.DefaultBigTable)
	require.NoError(t, err)
	var md bytes.Buffer
	require.NoError(t, plans.Markdown(&md, got))
	t.Logf("plans at %d contacts:\n%s", surveyContacts, md.String())

	names := map[string]bool{}
	for _, p := range got {
		names[p.Name] = true
		require.NotEmpty(t, p.Accesses, "%s: no EXPLAIN lines", p.Name)
	}
	for _, want := range []string{"store.Claim", "store.LeaseContacts", "mautic.Messages", "mautic.Contacts", "mautic.FrequencyRules",
		"mautic.DoNotContact", "mautic.PushIDs", "mautic.Emails", "mautic.SMSMessages", "mautic.PushNotifications",
		"mautic.Frequency(email)", "mautic.Frequency(sms)", "mautic.Frequency(notification)", "store.Owned", "mautic.PendingQueueRow",
		"mautic.EventExists", "mautic.InsertEmailCopies", "mautic.PendingQueueFloor", "mautic.ClaimDueQueueRows", "store.OwnedQueueRows",
		"mautic.QueueRows", "mautic.ExistingContacts", "mautic.QueueDepth", "mautic.SMSStatByHash", "store.Backlog", "store.OldestDue",
		"store.Recent", "store.Latest", "store.Latest(failed)"} {
		require.True(t, names[want], "the survey recorded no statement of %s", want)
	}
	require.Empty(t, plans.Problems(got), "plans:\n%s", md.String())
}

// seedSurvey writes the dataset with a few INSERT ... SELECT statements
// over a numbers table, analyzes the tables, and returns a batch of 128
// contacts spread over it (the sidecar's default batch size).
func seedSurvey(t *testing.T, db *testdb.DB, now time.Time) plans.Batch {
	t.Helper()
	ctx := context.Background()
	batchNow := now
	now = now.Truncate(time.Second)
	s := seed.New(db.DB, db.Prefix)
	s.Now = func() time.Time { return now }
	content := map[string]int64{}
	var err error
	content["email"], err = s.Email(ctx, seed.Email{Name: "Sale", Subject: "Our sale", HTML: "<p>Hi {contactfield=firstname}</p>",
		FromAddress: "news@example.test"})
	require.NoError(t, err)
	content["sms"], err = s.SMS(ctx, seed.SMS{Name: "Sale SMS", Message: "Our sale starts today"})
	require.NoError(t, err)
	content["notification"], err = s.Push(ctx, seed.Push{Name: "Sale push", Heading: "Sale", Message: "Our sale starts today"})
	require.NoError(t, err)
	messageID, err := s.Message(ctx, "Sale", seed.Channel{Channel: "email", ChannelID: content["email"]},
		seed.Channel{Channel: "sms", ChannelID: content["sms"]}, seed.Channel{Channel: "notification", ChannelID: content["notification"]})
	require.NoError(t, err)
	_, eventID, err := s.Campaign(ctx, "Spring")
	require.NoError(t, err)
	emails, err := db.Mautic.Emails(ctx, db.Mautic, []int64{content["email"]})
	require.NoError(t, err)
	e := emails[content["email"]]
	require.NoError(t, db.Mautic.InsertEmailCopies(ctx, db.Mautic, []mautic.EmailCopy{{ID: mautic.EmailCopyID(e.Subject, e.CustomHTML),
		Created: now, Subject: e.Subject, Body: e.CustomHTML}}), "the copy exists after the first send")

	// 1 .. 10000.
	db.MustExec(t, "CREATE TABLE `{p}plans_digits` (d INT NOT NULL PRIMARY KEY)")
	db.MustExec(t, "INSERT INTO `{p}plans_digits` VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)")
	db.MustExec(t, "CREATE TABLE `{p}plans_nums` (n INT NOT NULL PRIMARY KEY)")
	db.MustExec(t, "INSERT INTO `{p}plans_nums` SELECT a.d + 10*b.d + 100*c.d + 1000*d.d + 1"+
		" FROM `{p}plans_digits` a, `{p}plans_digits` b, `{p}plans_digits` c, `{p}plans_digits` d")
	n := surveyContacts
	nums := " FROM `{p}plans_nums` WHERE n <= ?"
	// Contacts: 85% with an email address, 55% with a mobile number.
	db.MustExec(t, "INSERT INTO `{p}leads` (id, is_published, date_added, date_modified, points, firstname, lastname, email, mobile, city)"+
		" SELECT n, 1, ?, ?, 0, CONCAT('First', n), CONCAT('Last', n), IF(n % 20 < 17, CONCAT('c', n, '@example.test'), NULL),"+
		" IF(n % 20 < 11, CONCAT('+3161', LPAD(n, 7, '0')), NULL), 'Utrecht'"+nums, now, now, n)
	// A primary company for a third of them.
	db.MustExec(t, "INSERT INTO `{p}companies` (id, is_published, date_added, companyname, score) SELECT n, 1, ?, CONCAT('Company ', n), 0"+
		nums, now, 300)
	db.MustExec(t, "INSERT INTO `{p}companies_leads` (company_id, lead_id, date_added, is_primary) SELECT n % 300 + 1, n, ?, 1"+
		nums+" AND n % 3 = 0", now, n)
	// Rules for half of them (email and SMS; a limit on half of those),
	// DNC rows for a quarter, push ids for 40%.
	for _, ch := range []string{"email", "sms"} {
		db.MustExec(t, "INSERT INTO `{p}lead_frequencyrules` (lead_id, date_added, frequency_number, frequency_time, channel, preferred_channel)"+
			" SELECT n, ?, IF(n % 4 = 0, 3, NULL), IF(n % 4 = 0, 'WEEK', NULL), ?, n % 8 = 0"+nums+" AND n % 2 = 0", now, ch, n)
	}
	db.MustExec(t, "INSERT INTO `{p}lead_donotcontact` (lead_id, date_added, reason, channel, comments)"+
		" SELECT n, ?, 1 + n % 3, IF(n % 8 = 0, 'sms', 'email'), 'test'"+nums+" AND n % 4 = 0", now, n)
	db.MustExec(t, "INSERT INTO `{p}push_ids` (push_id, lead_id, enabled, mobile) SELECT CONCAT('web-', n), n, 1, 0"+nums+" AND n % 5 < 2", n)
	// Sends over the last 60 days: 4 emails per contact, an SMS for 60%,
	// a push for 40%.
	db.MustExec(t, "INSERT INTO `{p}email_stats` (email_id, lead_id, email_address, date_sent, is_read, is_failed, viewed_in_browser,"+
		" tracking_hash, retry_count, tokens, open_count)"+
		" SELECT ?, (n - 1) % ? + 1, CONCAT('c', n, '@example.test'), ? - INTERVAL (n % 60) DAY, 0, 0, 0, CONCAT('e', n), 0, 'a:0:{}', 0"+nums,
		content["email"], n, now, 4*n)
	db.MustExec(t, "INSERT INTO `{p}sms_message_stats` (sms_id, lead_id, date_sent, is_failed, tracking_hash, tokens, details)"+
		" SELECT ?, n, ? - INTERVAL (n % 60) DAY, 0, CONCAT('s', n), 'a:0:{}', '[]'"+nums+" AND n % 5 < 3", content["sms"], now, n)
	db.MustExec(t, "INSERT INTO `{p}push_notification_stats` (notification_id, lead_id, date_sent, is_clicked, retry_count, tokens)"+
		" SELECT ?, n, ? - INTERVAL (n % 60) DAY, 0, 0, 'a:0:{}'"+nums+" AND n % 5 < 2", content["notification"], now, n)
	db.MustExec(t, "INSERT INTO `{p}email_copies` (id, date_created, subject) SELECT LEFT(MD5(n), 32), ?, 'old'"+nums, now, 2000)
	// message_queue: 5000 rows sent over the last 30 days, 200 pending
	// (half of them due): pending rows are a small share, as in a drained
	// queue, which makes message_success attractive to the optimizer.
	db.MustExec(t, "INSERT INTO `{p}message_queue` (channel, channel_id, event_id, lead_id, priority, max_attempts, attempts, success,"+
		" status, date_published, scheduled_date, date_sent, options)"+
		" SELECT 'email', ?, ?, n, 2, 3, 1, 1, 'sent', ? - INTERVAL (n % 30) DAY, ? - INTERVAL (n % 30) DAY, ? - INTERVAL (n % 30) DAY,"+
		" 'a:1:{i:0;a:0:{}}'"+nums, content["email"], eventID, now, now, now, n)
	db.MustExec(t, "INSERT INTO `{p}message_queue` (channel, channel_id, event_id, lead_id, priority, max_attempts, attempts, success,"+
		" status, date_published, scheduled_date, options)"+
		" SELECT IF(n % 2 = 0, 'email', 'sms'), IF(n % 2 = 0, ?, ?), ?, n, 2, 3, 0, 0, 'pending', ?, ? + INTERVAL (n - 100) SECOND,"+
		" 'a:1:{i:0;a:0:{}}'"+nums, content["email"], content["sms"], eventID, now, now, 200)
	// The sidecar's tables: 10000 dispatches (9000 routed over the last
	// week, 900 accepted and due, 100 failed), a lock row per contact,
	// 2000 ended queue leases.
	db.MustExec(t, "INSERT INTO `{p}sidecar_dispatches` (id, state, contact_id, message_id, event_id, attempts, trace, run_at, created_at, updated_at)"+
		" SELECT n, CASE WHEN n <= 9000 THEN 'sent' WHEN n <= 9900 THEN 'accepted' ELSE 'failed' END, (n - 1) % ? + 1, ?, ?, 1, '[]',"+
		" ? - INTERVAL (10000 - n) MINUTE, ? - INTERVAL (10000 - n) MINUTE, ? - INTERVAL (10000 - n) MINUTE"+nums,
		n, messageID, eventID, now, now, now, 10000)
	db.MustExec(t, "INSERT INTO `{p}sidecar_contact_locks` (contact_id, owner, until) SELECT n, NULL, NULL"+nums, n)
	db.MustExec(t, "INSERT INTO `{p}sidecar_queue_leases` (queue_id, owner, until) SELECT n, UNHEX(MD5(n)), ? - INTERVAL 1 DAY"+nums, now, 2000)
	for _, table := range []string{"leads", "companies", "companies_leads", "lead_frequencyrules", "lead_donotcontact", "push_ids",
		"email_stats", "sms_message_stats", "push_notification_stats", "email_copies", "message_queue", "sidecar_dispatches",
		"sidecar_contact_locks", "sidecar_queue_leases"} {
		db.MustExec(t, "ANALYZE TABLE "+db.T(table))
	}

	var ids []int64
	for id := int64(1); len(ids) < 128; id += surveyContacts / 128 {
		ids = append(ids, id)
	}
	return plans.Batch{
		ContactIDs: ids,
		MessageID:  messageID,
		Content:    content,
		EventID:    eventID,
		Defaults: map[string]mautic.Limit{"email": {Number: 5, Unit: mautic.Week}, "sms": {Number: 2, Unit: mautic.Day},
			"notification": {Number: 3, Unit: mautic.Month}},
		SMSHash: "s1234",
		Now:     batchNow,
	}
}

func TestCheck(t *testing.T) {
	// Plans as EXPLAIN would give them, checked without a database.
	tests := []struct {
		name  string
		claim bool
		a     plans.Access
		want  int
	}{
		{"index range on a big table", false, plans.Access{Table: "leads", Type: "range", Key: "PRIMARY", Rows: 64, TableRows: 100000}, 0},
		{"full scan of a big table", false, plans.Access{Table: "leads", Type: "ALL", Rows: 100000, TableRows: 100000}, 1},
		{"full index scan of a big table", false, plans.Access{Table: "leads", Type: "index", Rows: 100000, TableRows: 100000}, 1},
		{"index scan that stops at a LIMIT", false, plans.Access{Table: "sidecar_dispatches", Type: "index", Rows: 50, TableRows: 100000}, 0},
		{"full scan of a small table", false, plans.Access{Table: "messages", Type: "ALL", Rows: 3, TableRows: 3}, 0},
		{"derived table", false, plans.Access{Table: "<union1,2>", Type: "ALL", TableRows: -1}, 0},
		{"a read that sorts", false, plans.Access{Table: "lead_donotcontact", Type: "range", Extra: "Using where; Using filesort", TableRows: 5000}, 0},
		{"a claim that sorts", true, plans.Access{Table: "message_queue", Type: "ref", Extra: "Using where; Using filesort", TableRows: 5000}, 1},
		{"a claim with a temporary table", true, plans.Access{Table: "message_queue", Type: "ref", Extra: "Using temporary", TableRows: 5000}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plans.CheckPlan(plans.Plan{Query: plans.Query{Name: "x", Claim: tc.claim}, Accesses: []plans.Access{tc.a}}, 0)
			require.Len(t, got, tc.want, "%v", got)
		})
	}
}
