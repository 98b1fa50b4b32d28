package mautic

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FrequencyRule is a lead_frequencyrules row: a contact's preference for one
// channel (preferred flag, frequency limit, pause window).
type FrequencyRule struct {
	ID        int64
	ContactID int64
	Channel   string
	// Number is frequency_number; nil when NULL.
	Number *int
	// Unit is frequency_time ("DAY", "WEEK", "MONTH"); "" when NULL.
	Unit      Unit
	Preferred bool
	PauseFrom *time.Time
	PauseTo   *time.Time
}

// Numeric reports whether the rule is a "numeric rule": both number and time
// set (DESIGN.md section 6 item 4).
func (r FrequencyRule) Numeric() bool { return r.Number != nil && r.Unit != "" }

// PausedAt reports whether now is inside the pause window (both ends set,
// the end inclusive).
func (r FrequencyRule) PausedAt(now time.Time) bool {
	if r.PauseFrom == nil || r.PauseTo == nil {
		return false
	}
	return !now.Before(*r.PauseFrom) && !now.After(*r.PauseTo)
}

// FrequencyRules returns each contact's lead_frequencyrules rows, ORDER BY id.
func (db *DB) FrequencyRules(ctx context.Context, q Querier, contactIDs []int64) (map[int64][]FrequencyRule, error) {
	ids := uniqueIDs(contactIDs)
	out := make(map[int64][]FrequencyRule, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id, lead_id, channel, frequency_number, frequency_time, preferred_channel,"+
		" pause_from_date, pause_to_date FROM "+db.T("lead_frequencyrules")+" WHERE lead_id IN ("+
		inPlaceholders(len(ids))+") ORDER BY id", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load frequency rules: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r        FrequencyRule
			num      sql.NullInt64
			unit     sql.NullString
			from, to sql.NullTime
		)
		if err := rows.Scan(&r.ID, &r.ContactID, &r.Channel, &num, &unit, &r.Preferred, &from, &to); err != nil {
			return nil, fmt.Errorf("load frequency rules: %w", err)
		}
		if num.Valid {
			n := int(num.Int64)
			r.Number = &n
		}
		if unit.Valid {
			r.Unit = Unit(unit.String)
		}
		r.PauseFrom, r.PauseTo = nullTime(from), nullTime(to)
		out[r.ContactID] = append(out[r.ContactID], r)
	}
	return out, rows.Err()
}

// EffectiveRules keeps, per channel, only the rule with the highest id
// (DESIGN.md 6.6), preserving the id order of the survivors.
func EffectiveRules(rules []FrequencyRule) []FrequencyRule {
	last := map[string]int64{}
	for _, r := range rules {
		if r.ID >= last[r.Channel] {
			last[r.Channel] = r.ID
		}
	}
	out := make([]FrequencyRule, 0, len(last))
	for _, r := range rules {
		if last[r.Channel] == r.ID {
			out = append(out, r)
		}
	}
	return out
}

// DNCReason is lead_donotcontact.reason, as defined in LeadBundle's DoNotContact.
type DNCReason int

// The DNC reasons.
const (
	DNCContactable  DNCReason = 0
	DNCUnsubscribed DNCReason = 1
	DNCBounced      DNCReason = 2
	DNCManual       DNCReason = 3
)

func (r DNCReason) String() string {
	switch r {
	case DNCContactable:
		return "contactable"
	case DNCUnsubscribed:
		return "unsubscribed"
	case DNCBounced:
		return "bounced"
	case DNCManual:
		return "manual"
	}
	return fmt.Sprintf("reason %d", int(r))
}

// DNC is a lead_donotcontact row.
type DNC struct {
	ID        int64
	ContactID int64
	Channel   string
	ChannelID int64 // 0 when NULL
	Reason    DNCReason
	Comments  string
	DateAdded time.Time
}

// DoNotContact returns each contact's lead_donotcontact rows (all channels,
// any reason), ORDER BY id.
func (db *DB) DoNotContact(ctx context.Context, q Querier, contactIDs []int64) (map[int64][]DNC, error) {
	ids := uniqueIDs(contactIDs)
	out := make(map[int64][]DNC, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id, lead_id, channel, channel_id, reason, comments, date_added FROM "+
		db.T("lead_donotcontact")+" WHERE lead_id IN ("+inPlaceholders(len(ids))+") ORDER BY id", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load do-not-contact: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			d        DNC
			chID     sql.NullInt64
			comments sql.NullString
		)
		if err := rows.Scan(&d.ID, &d.ContactID, &d.Channel, &chID, &d.Reason, &comments, &d.DateAdded); err != nil {
			return nil, fmt.Errorf("load do-not-contact: %w", err)
		}
		d.ChannelID, d.Comments = chID.Int64, comments.String
		out[d.ContactID] = append(out[d.ContactID], d)
	}
	return out, rows.Err()
}

// PushID is a push_ids row.
type PushID struct {
	ContactID int64
	PushID    string
	Enabled   bool
	Mobile    bool
}

// PushIDs returns each contact's push_ids rows, ORDER BY id. Mautic does not
// check push_ids.enabled when sending; callers decide.
func (db *DB) PushIDs(ctx context.Context, q Querier, contactIDs []int64) (map[int64][]PushID, error) {
	ids := uniqueIDs(contactIDs)
	out := make(map[int64][]PushID, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT lead_id, push_id, enabled, mobile FROM "+db.T("push_ids")+
		" WHERE lead_id IN ("+inPlaceholders(len(ids))+") ORDER BY id", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load push ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p PushID
		if err := rows.Scan(&p.ContactID, &p.PushID, &p.Enabled, &p.Mobile); err != nil {
			return nil, fmt.Errorf("load push ids: %w", err)
		}
		out[p.ContactID] = append(out[p.ContactID], p)
	}
	return out, rows.Err()
}
