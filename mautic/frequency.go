package mautic

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Unit is a frequency window: lead_frequencyrules.frequency_time and the
// <channel>_frequency_time config parameters.
type Unit string

// The units Mautic's UI offers.
const (
	Day   Unit = "DAY"
	Week  Unit = "WEEK"
	Month Unit = "MONTH"
)

// Valid reports whether u is DAY, WEEK or MONTH.
func (u Unit) Valid() bool { return u == Day || u == Week || u == Month }

// PerMonth converts n sends per unit to sends per month the way Mautic's
// comparator does: DAY×30, WEEK×4, MONTH×1.
func (u Unit) PerMonth(n int) int {
	switch u {
	case Day:
		return n * 30
	case Week:
		return n * 4
	}
	return n
}

// SubUnit returns t minus one unit with MySQL's DATE_SUB arithmetic: a MONTH
// keeps the day of month, clamped to the target month's last day
// (31 Mar − 1 MONTH = 28 or 29 Feb).
func SubUnit(t time.Time, u Unit) time.Time { return addUnits(t, u, -1) }

// AddUnit returns t plus one unit with MySQL's DATE_ADD arithmetic.
func AddUnit(t time.Time, u Unit) time.Time { return addUnits(t, u, 1) }

func addUnits(t time.Time, u Unit, n int) time.Time {
	switch u {
	case Day:
		return t.AddDate(0, 0, n)
	case Week:
		return t.AddDate(0, 0, 7*n)
	case Month:
		y, m, d := t.Date()
		first := time.Date(y, m, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location()).AddDate(0, n, 0)
		last := daysIn(first.Year(), first.Month())
		if d > last {
			d = last
		}
		return first.AddDate(0, 0, d-1)
	}
	return t
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// LeavesWindowAt returns the first whole second T at which a send made at
// sent no longer counts in a window of one unit ending at T (that is,
// SubUnit(T) > sent). It equals AddUnit(sent)+1s except where MONTH clamping
// keeps the send in the window longer.
func LeavesWindowAt(sent time.Time, u Unit) time.Time {
	t := AddUnit(sent, u).Truncate(time.Second).Add(time.Second)
	for i := 0; i < 5 && !SubUnit(t, u).After(sent); i++ {
		t = t.AddDate(0, 0, 1).Truncate(24 * time.Hour)
	}
	return t
}

// Limit is a frequency limit: at most Number sends per one Unit.
type Limit struct {
	Number int
	Unit   Unit
}

func (l Limit) String() string { return fmt.Sprintf("%d per %s", l.Number, l.Unit) }

// Active reports whether a global default limit is on: Mautic applies it
// only when both number and time are truthy (number 0 = off).
func (l Limit) Active() bool { return l.Number > 0 && l.Unit.Valid() }

// FrequencySource says where a contact's limit comes from.
type FrequencySource string

// The sources of a limit.
const (
	SourceNone    FrequencySource = ""
	SourceRule    FrequencySource = "rule"
	SourceDefault FrequencySource = "default"
)

// FrequencyStatus is one contact's frequency state on one channel at a moment.
type FrequencyStatus struct {
	Source FrequencySource
	Limit  Limit
	// Count is the number of the channel's stats rows with date_sent in the
	// rolling window [now − 1 unit, now].
	Count int
	// Reached is true when Count >= Limit.Number (always for a limit of 0).
	Reached bool
	// LiftsAt, when Reached and the limit is not 0, is when the block lifts
	// as DESIGN.md 6 item 6 defines it: the (Count − Number + 1)-th oldest
	// counted send's date_sent plus one unit (MySQL DATE_ADD).
	LiftsAt time.Time
	// Oldest is that send's date_sent (zero when not reached).
	Oldest time.Time
}

// Limited reports whether a limit applies.
func (s FrequencyStatus) Limited() bool { return s.Source != SourceNone }

// ApplicableLimit returns the limit that applies to a contact on a channel
// (DESIGN.md section 6 item 4, mautic-reference.md 4.3): the contact's numeric
// rule for the channel (highest id); else the channel's global default,
// unless the contact has a numeric rule on any channel.
func ApplicableLimit(rules []FrequencyRule, channel string, defaults map[string]Limit) (Limit, FrequencySource) {
	eff := EffectiveRules(rules)
	anyNumeric := false
	for _, r := range eff {
		if !r.Numeric() {
			continue
		}
		anyNumeric = true
		if r.Channel == channel {
			return Limit{Number: *r.Number, Unit: r.Unit}, SourceRule
		}
	}
	if anyNumeric {
		return Limit{}, SourceNone
	}
	if d, ok := defaults[channel]; ok && d.Active() {
		return d, SourceDefault
	}
	return Limit{}, SourceNone
}

// statsQuery returns the SELECT of (lead_id, date_sent) of a channel's sends,
// with "%s" for the IN list; the arguments after the ids are since and until.
func (db *DB) statsQuery(channel string) (query string, extra []any) {
	switch channel {
	case "email":
		return "SELECT lead_id, date_sent FROM " + db.T("email_stats") + " WHERE lead_id IN (%s) AND date_sent >= ? AND date_sent <= ?", nil
	case "sms":
		return "SELECT lead_id, date_sent FROM " + db.T("sms_message_stats") + " WHERE lead_id IN (%s) AND date_sent >= ? AND date_sent <= ?", nil
	case "notification", "mobile_notification":
		mobile := 0
		if channel == "mobile_notification" {
			mobile = 1
		}
		return "SELECT s.lead_id, s.date_sent FROM " + db.T("push_notification_stats") + " s JOIN " + db.T("push_notifications") +
			" n ON n.id = s.notification_id WHERE n.mobile = " + fmt.Sprint(mobile) +
			" AND s.lead_id IN (%s) AND s.date_sent >= ? AND s.date_sent <= ?", nil
	case "tweet":
		return "SELECT lead_id, date_sent FROM " + db.T("tweet_stats") + " WHERE lead_id IN (%s) AND date_sent >= ? AND date_sent <= ?", nil
	}
	return "SELECT contact_id, date_sent FROM " + db.T("sidecar_sends") + " WHERE channel = ? AND contact_id IN (%s) AND date_sent >= ? AND date_sent <= ?", []any{channel}
}

// Frequency evaluates the frequency state of many contacts on one channel at
// now (UTC, from the caller: never the database's NOW()). rules holds each
// contact's lead_frequencyrules rows (as FrequencyRules returns them);
// defaults holds the global default per channel. It reads the stats with one
// query for the channel, whatever the number of contacts. Contacts without a
// limit get a zero FrequencyStatus.
func (db *DB) Frequency(ctx context.Context, q Querier, channel string, contactIDs []int64,
	rules map[int64][]FrequencyRule, defaults map[string]Limit, now time.Time) (map[int64]FrequencyStatus, error) {
	now = now.UTC()
	ids := uniqueIDs(contactIDs)
	out := make(map[int64]FrequencyStatus, len(ids))
	byUnit := map[Unit][]int64{}
	for _, id := range ids {
		l, src := ApplicableLimit(rules[id], channel, defaults)
		if src == SourceNone {
			continue
		}
		st := FrequencyStatus{Source: src, Limit: l}
		if l.Number <= 0 {
			// A limit of 0 is always reached and never lifts.
			st.Reached = true
		}
		out[id] = st
		if l.Unit.Valid() && l.Number > 0 {
			byUnit[l.Unit] = append(byUnit[l.Unit], id)
		}
		// A rule with an unknown unit counts nothing (Mautic's CASE yields
		// NULL): never reached unless its number is 0.
	}
	if len(byUnit) == 0 {
		return out, nil
	}
	base, extra := db.statsQuery(channel)
	var parts []string
	var args []any
	for _, u := range []Unit{Day, Week, Month} {
		cids := byUnit[u]
		if len(cids) == 0 {
			continue
		}
		parts = append(parts, "("+fmt.Sprintf(base, inPlaceholders(len(cids)))+")")
		args = append(args, extra...)
		args = append(args, int64Args(cids)...)
		args = append(args, SubUnit(now, u), now)
	}
	rows, err := q.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("count %s sends: %w", channel, err)
	}
	defer rows.Close()
	sends := map[int64][]time.Time{}
	for rows.Next() {
		var (
			id   int64
			sent time.Time
		)
		if err := rows.Scan(&id, &sent); err != nil {
			return nil, fmt.Errorf("count %s sends: %w", channel, err)
		}
		sends[id] = append(sends[id], sent.UTC())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count %s sends: %w", channel, err)
	}
	for id, st := range out {
		if st.Limit.Number <= 0 || !st.Limit.Unit.Valid() {
			continue
		}
		ds := sends[id]
		sort.Slice(ds, func(i, j int) bool { return ds[i].Before(ds[j]) })
		st.Count = len(ds)
		if st.Count >= st.Limit.Number {
			st.Reached = true
			st.Oldest = ds[st.Count-st.Limit.Number]
			st.LiftsAt = AddUnit(st.Oldest, st.Limit.Unit)
		}
		out[id] = st
	}
	return out, nil
}
