package mautic_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

// countingQuerier counts the queries a call makes.
type countingQuerier struct {
	mautic.Querier
	n int
}

func (c *countingQuerier) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n++
	return c.Querier.QueryContext(ctx, q, args...)
}

func limit(n int, u mautic.Unit) *mautic.Limit { return &mautic.Limit{Number: n, Unit: u} }

type freqEnv struct {
	t   *testing.T
	db  *testdb.DB
	s   *seed.Seeder
	ctx context.Context
}

func newFreqEnv(t *testing.T) *freqEnv {
	db := testdb.New(t)
	return &freqEnv{t: t, db: db, s: seed.New(db.DB, db.Prefix), ctx: context.Background()}
}

func (e *freqEnv) contact() int64 {
	id, err := e.s.Contact(e.ctx, seed.Contact{Email: "x@example.test", Mobile: "+15550001111"})
	require.NoError(e.t, err)
	return id
}

func (e *freqEnv) rule(contact int64, ch string, l *mautic.Limit) {
	_, err := e.s.Rule(e.ctx, seed.Rule{ContactID: contact, Channel: ch, Limit: l})
	require.NoError(e.t, err)
}

func (e *freqEnv) emailSent(contact int64, at time.Time) {
	require.NoError(e.t, e.s.EmailStat(e.ctx, contact, 0, at))
}

func (e *freqEnv) freq(ch string, ids []int64, defaults map[string]mautic.Limit, now time.Time) map[int64]mautic.FrequencyStatus {
	rules, err := e.db.Mautic.FrequencyRules(e.ctx, e.db.Mautic, ids)
	require.NoError(e.t, err)
	st, err := e.db.Mautic.Frequency(e.ctx, e.db.Mautic, ch, ids, rules, defaults, now)
	require.NoError(e.t, err)
	return st
}

func TestFrequencyWindowEdges(t *testing.T) {
	e := newFreqEnv(t)
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		unit  mautic.Unit
		sent  time.Time
		count bool
	}{
		{"DAY 23h59m ago counts", mautic.Day, now.Add(-23*time.Hour - 59*time.Minute), true},
		{"DAY 24h01m ago does not", mautic.Day, now.Add(-24*time.Hour - time.Minute), false},
		{"DAY exactly 24h ago counts (window includes its start)", mautic.Day, now.Add(-24 * time.Hour), true},
		{"WEEK 6d23h59m ago counts", mautic.Week, now.Add(-7*24*time.Hour + time.Minute), true},
		{"WEEK 7d1m ago does not", mautic.Week, now.Add(-7*24*time.Hour - time.Minute), false},
		// 31 March − 1 MONTH is 28 February (MySQL clamps the day).
		{"MONTH 28 Feb 12:01 counts", mautic.Month, time.Date(2026, 2, 28, 12, 1, 0, 0, time.UTC), true},
		{"MONTH 28 Feb 11:59 does not", mautic.Month, time.Date(2026, 2, 28, 11, 59, 0, 0, time.UTC), false},
		{"a send in the future does not count", mautic.Day, now.Add(time.Minute), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.contact()
			e.rule(c, "email", limit(1, tc.unit))
			e.emailSent(c, tc.sent)
			st := e.freq("email", []int64{c}, nil, now)[c]
			require.Equal(t, mautic.SourceRule, st.Source)
			require.Equal(t, tc.count, st.Reached, "reached")
			want := 0
			if tc.count {
				want = 1
			}
			require.Equal(t, want, st.Count)
		})
	}
}

func TestFrequencyDefaultRule(t *testing.T) {
	e := newFreqEnv(t)
	now := time.Now().UTC()
	plain := e.contact() // no rules at all
	e.emailSent(plain, now.Add(-time.Hour))
	e.emailSent(plain, now.Add(-2*time.Hour))

	exempt := e.contact() // a numeric rule on sms only: exempt from the email default
	e.rule(exempt, "sms", limit(5, mautic.Week))
	e.emailSent(exempt, now.Add(-time.Hour))
	e.emailSent(exempt, now.Add(-2*time.Hour))

	prefOnly := e.contact() // a rule without numbers: the default still applies
	e.rule(prefOnly, "email", nil)
	e.emailSent(prefOnly, now.Add(-time.Hour))
	e.emailSent(prefOnly, now.Add(-2*time.Hour))

	ids := []int64{plain, exempt, prefOnly}
	t.Run("default on", func(t *testing.T) {
		st := e.freq("email", ids, map[string]mautic.Limit{"email": {Number: 2, Unit: mautic.Day}}, now)
		require.True(t, st[plain].Reached)
		require.Equal(t, mautic.SourceDefault, st[plain].Source)
		require.Equal(t, 2, st[plain].Count)
		require.False(t, st[exempt].Limited(), "a numeric rule on another channel exempts from the default")
		require.True(t, st[prefOnly].Reached)
	})
	t.Run("default of 3 not reached by 2 sends", func(t *testing.T) {
		st := e.freq("email", ids, map[string]mautic.Limit{"email": {Number: 3, Unit: mautic.Day}}, now)
		require.False(t, st[plain].Reached)
		require.Equal(t, 2, st[plain].Count)
	})
	t.Run("default off", func(t *testing.T) {
		for _, d := range []map[string]mautic.Limit{nil, {"email": {Number: 0, Unit: mautic.Day}}, {"email": {Number: 2, Unit: ""}}} {
			st := e.freq("email", ids, d, now)
			require.False(t, st[plain].Limited())
			require.False(t, st[prefOnly].Limited())
		}
	})
	t.Run("the sms default does not apply to email", func(t *testing.T) {
		st := e.freq("email", ids, map[string]mautic.Limit{"sms": {Number: 1, Unit: mautic.Day}}, now)
		require.False(t, st[plain].Limited())
	})
}

func TestFrequencyWhatCounts(t *testing.T) {
	e := newFreqEnv(t)
	now := time.Now().UTC()
	smsID, err := e.s.SMS(e.ctx, seed.SMS{Message: "hi"})
	require.NoError(t, err)

	failed := e.contact()
	e.rule(failed, "sms", limit(1, mautic.Day))
	require.NoError(t, e.s.SMSStat(e.ctx, failed, smsID, now.Add(-time.Hour), true))

	other := e.contact() // email rule, but only an SMS was sent
	e.rule(other, "email", limit(1, mautic.Day))
	require.NoError(t, e.s.SMSStat(e.ctx, other, smsID, now.Add(-time.Hour), false))

	st := e.freq("sms", []int64{failed}, nil, now)
	require.True(t, st[failed].Reached, "a failed SMS stat counts")
	st = e.freq("email", []int64{other}, nil, now)
	require.Equal(t, 0, st[other].Count, "sends on other channels do not count")
	require.False(t, st[other].Reached)

	t.Run("limit of 0 is always reached and never lifts", func(t *testing.T) {
		c := e.contact()
		e.rule(c, "email", limit(0, mautic.Day))
		st := e.freq("email", []int64{c}, nil, now)[c]
		require.True(t, st.Reached)
		require.True(t, st.LiftsAt.IsZero())
	})
	t.Run("only the highest-id rule of a channel counts", func(t *testing.T) {
		c := e.contact()
		e.rule(c, "email", limit(1, mautic.Day))
		e.rule(c, "email", limit(5, mautic.Day))
		e.emailSent(c, now.Add(-time.Hour))
		st := e.freq("email", []int64{c}, nil, now)[c]
		require.Equal(t, 5, st.Limit.Number)
		require.False(t, st.Reached)
	})
	t.Run("lift time is the (c-N+1)-th oldest send plus one unit", func(t *testing.T) {
		c := e.contact()
		e.rule(c, "email", limit(2, mautic.Day))
		s1, s2, s3 := now.Add(-20*time.Hour).Truncate(time.Second), now.Add(-10*time.Hour).Truncate(time.Second), now.Add(-time.Hour).Truncate(time.Second)
		for _, s := range []time.Time{s3, s1, s2} {
			e.emailSent(c, s)
		}
		st := e.freq("email", []int64{c}, nil, now)[c]
		require.Equal(t, 3, st.Count)
		require.True(t, st.Reached)
		require.Equal(t, s2, st.Oldest)
		require.Equal(t, s2.Add(24*time.Hour), st.LiftsAt)
	})
	t.Run("web and mobile push are counted apart", func(t *testing.T) {
		web, err := e.s.Push(e.ctx, seed.Push{Heading: "h", Message: "m"})
		require.NoError(t, err)
		c := e.contact()
		e.rule(c, "notification", limit(1, mautic.Day))
		e.rule(c, "mobile_notification", limit(1, mautic.Day))
		require.NoError(t, e.s.PushStat(e.ctx, c, web, now.Add(-time.Hour)))
		require.True(t, e.freq("notification", []int64{c}, nil, now)[c].Reached)
		require.False(t, e.freq("mobile_notification", []int64{c}, nil, now)[c].Reached)
	})
	t.Run("custom channels count the sidecar's own sends", func(t *testing.T) {
		c := e.contact()
		e.rule(c, "whatsapp", limit(1, mautic.Week))
		require.NoError(t, e.db.Mautic.InsertCustomSends(e.ctx, e.db.Mautic, []mautic.CustomSend{
			{ContactID: c, Channel: "whatsapp", DateSent: now.Add(-48 * time.Hour)},
			{ContactID: c, Channel: "telegram", DateSent: now.Add(-48 * time.Hour)},
		}))
		st := e.freq("whatsapp", []int64{c}, nil, now)[c]
		require.Equal(t, 1, st.Count)
		require.True(t, st.Reached)
	})
}

func TestFrequencyManyContactsOneQuery(t *testing.T) {
	e := newFreqEnv(t)
	now := time.Now().UTC()
	var ids []int64
	want := map[int64]int{}
	units := []mautic.Unit{mautic.Day, mautic.Week, mautic.Month}
	for i := 0; i < 150; i++ {
		c := e.contact()
		ids = append(ids, c)
		u := units[i%3]
		e.rule(c, "email", limit(2, u))
		// i%4 sends inside every window, plus one 40 days ago that never counts.
		for k := 0; k < i%4; k++ {
			e.emailSent(c, now.Add(-time.Duration(k+1)*time.Hour))
		}
		e.emailSent(c, now.Add(-40*24*time.Hour))
		want[c] = i % 4
	}
	rules, err := e.db.Mautic.FrequencyRules(e.ctx, e.db.Mautic, ids)
	require.NoError(t, err)
	cq := &countingQuerier{Querier: e.db.Mautic}
	st, err := e.db.Mautic.Frequency(e.ctx, cq, "email", ids, rules, nil, now)
	require.NoError(t, err)
	require.Equal(t, 1, cq.n, "one query for all contacts and units")
	for _, c := range ids {
		require.Equal(t, want[c], st[c].Count, "contact %d", c)
		require.Equal(t, want[c] >= 2, st[c].Reached, "contact %d", c)
	}
}

// TestUnitArithmeticMatchesMySQL compares SubUnit and AddUnit with the
// server's DATE_SUB and DATE_ADD on dates where month arithmetic clamps.
func TestUnitArithmeticMatchesMySQL(t *testing.T) {
	db := testdb.New(t, testdb.WithoutSchema(), testdb.WithoutMigrations())
	dates := []time.Time{
		time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC), time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 5, 31, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 1, 2, 3, 0, time.UTC), time.Date(2025, 2, 28, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 6, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC),
	}
	for _, d := range dates {
		for _, u := range []mautic.Unit{mautic.Day, mautic.Week, mautic.Month} {
			var sub, add time.Time
			q := fmt.Sprintf("SELECT DATE_SUB(CAST(? AS DATETIME), INTERVAL 1 %s), DATE_ADD(CAST(? AS DATETIME), INTERVAL 1 %s)", u, u)
			require.NoError(t, db.QueryRowx(q, d, d).Scan(&sub, &add))
			require.Equal(t, sub.UTC(), mautic.SubUnit(d, u), "DATE_SUB(%s, 1 %s)", d, u)
			require.Equal(t, add.UTC(), mautic.AddUnit(d, u), "DATE_ADD(%s, 1 %s)", d, u)
		}
	}
}

func TestLeavesWindowAt(t *testing.T) {
	sent := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	at := mautic.LeavesWindowAt(sent, mautic.Month)
	require.True(t, mautic.SubUnit(at, mautic.Month).After(sent))
	require.False(t, mautic.SubUnit(at.Add(-time.Second), mautic.Month).After(sent), "the first such second")
	day := mautic.LeavesWindowAt(sent, mautic.Day)
	require.Equal(t, sent.Add(24*time.Hour+time.Second), day)
}

// BenchmarkFrequency1000 measures the batch frequency read for 1,000
// contacts with rules and about five sends each in the last month.
func BenchmarkFrequency1000(b *testing.B) {
	db := testdb.New(b)
	ctx := context.Background()
	s := seed.New(db.DB, db.Prefix)
	now := time.Now().UTC()
	var ids []int64
	units := []mautic.Unit{mautic.Day, mautic.Week, mautic.Month}
	tx := db.MustBegin()
	s.DB = tx
	for i := 0; i < 1000; i++ {
		c, err := s.Contact(ctx, seed.Contact{Email: fmt.Sprintf("b%d@example.test", i)})
		require.NoError(b, err)
		ids = append(ids, c)
		_, err = s.Rule(ctx, seed.Rule{ContactID: c, Channel: "email", Limit: limit(3, units[i%3])})
		require.NoError(b, err)
		for k := 0; k < 5; k++ {
			require.NoError(b, s.EmailStat(ctx, c, 0, now.Add(-time.Duration(k*5+1)*24*time.Hour/4)))
		}
	}
	require.NoError(b, tx.Commit())
	rules, err := db.Mautic.FrequencyRules(ctx, db.Mautic, ids)
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := db.Mautic.Frequency(ctx, db.Mautic, "email", ids, rules, nil, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/contact")
}
