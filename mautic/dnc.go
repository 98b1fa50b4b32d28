package mautic

import (
	"context"
	"fmt"
	"time"
)

// AddDoNotContact records that a contact must not be contacted on a channel,
// as Mautic's DoNotContact model does: a new row when the contact has none
// for the channel; an existing row with another reason is updated, except
// that reason 1 (unsubscribed, the contact's own choice) is never
// overwritten. It reports whether a row was written.
func (db *DB) AddDoNotContact(ctx context.Context, e Execer, d DNC) (bool, error) {
	if d.ContactID <= 0 || d.Channel == "" {
		return false, fmt.Errorf("add do-not-contact: contact and channel are required")
	}
	if d.DateAdded.IsZero() {
		d.DateAdded = time.Now()
	}
	rows, err := e.QueryContext(ctx, "SELECT id, reason FROM "+db.T("lead_donotcontact")+
		" WHERE lead_id = ? AND channel = ? ORDER BY id", d.ContactID, d.Channel)
	if err != nil {
		return false, fmt.Errorf("add do-not-contact: %w", err)
	}
	var (
		existingID     int64
		existingReason DNCReason
		unsubscribed   bool
	)
	for rows.Next() {
		var id int64
		var r DNCReason
		if err := rows.Scan(&id, &r); err != nil {
			rows.Close()
			return false, fmt.Errorf("add do-not-contact: %w", err)
		}
		if r == DNCUnsubscribed {
			unsubscribed = true
		}
		if existingID == 0 {
			existingID, existingReason = id, r
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("add do-not-contact: %w", err)
	}
	switch {
	case existingID == 0:
		_, err = e.ExecContext(ctx, "INSERT INTO "+db.T("lead_donotcontact")+
			" (lead_id, date_added, reason, channel, channel_id, comments) VALUES (?, ?, ?, ?, ?, ?)",
			d.ContactID, d.DateAdded.UTC(), int(d.Reason), d.Channel, nullInt(d.ChannelID), nullString(d.Comments))
	case unsubscribed || existingReason == d.Reason:
		return false, nil
	default:
		_, err = e.ExecContext(ctx, "UPDATE "+db.T("lead_donotcontact")+
			" SET reason = ?, comments = ?, date_added = ? WHERE id = ?",
			int(d.Reason), nullString(d.Comments), d.DateAdded.UTC(), existingID)
	}
	if err != nil {
		return false, fmt.Errorf("add do-not-contact: %w", err)
	}
	return true, nil
}
