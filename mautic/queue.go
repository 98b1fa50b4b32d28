package mautic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Queue statuses Mautic writes in message_queue.status.
const (
	QueuePending     = "pending"
	QueueRescheduled = "rescheduled"
	QueueSent        = "sent"
	QueueCancelled   = "cancelled"
)

// QueueRetryDelay is how far Mautic moves a failed row's scheduled_date (PT15M).
const QueueRetryDelay = 15 * time.Minute

// QueueRow is a message_queue row.
type QueueRow struct {
	ID            int64
	Channel       string
	ChannelID     int64
	EventID       int64 // 0 when NULL
	ContactID     int64
	Priority      int
	MaxAttempts   int
	Attempts      int
	Success       bool
	Status        string
	DatePublished *time.Time
	ScheduledDate *time.Time
	LastAttempt   *time.Time
	DateSent      *time.Time
	Options       string
}

// Pending reports whether the row is still to be processed: success = 0
// and attempts < max_attempts.
func (r QueueRow) Pending() bool { return !r.Success && r.Attempts < r.MaxAttempts }

const queueCols = "id, channel, channel_id, event_id, lead_id, priority, max_attempts, attempts, success, status," +
	" date_published, scheduled_date, last_attempt, date_sent, options"

func scanQueueRows(rows *sql.Rows) ([]QueueRow, error) {
	defer rows.Close()
	var out []QueueRow
	for rows.Next() {
		var (
			r                            QueueRow
			eventID                      sql.NullInt64
			published, sched, last, sent sql.NullTime
			options                      sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.Channel, &r.ChannelID, &eventID, &r.ContactID, &r.Priority, &r.MaxAttempts, &r.Attempts,
			&r.Success, &r.Status, &published, &sched, &last, &sent, &options); err != nil {
			return nil, err
		}
		r.EventID, r.Options = eventID.Int64, options.String
		r.DatePublished, r.ScheduledDate, r.LastAttempt, r.DateSent = nullTime(published), nullTime(sched), nullTime(last), nullTime(sent)
		out = append(out, r)
	}
	return out, rows.Err()
}

// QueueRows reads message_queue rows by id.
func (db *DB) QueueRows(ctx context.Context, q Querier, ids []int64) (map[int64]QueueRow, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]QueueRow, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT "+queueCols+" FROM "+db.T("message_queue")+" WHERE id IN ("+inPlaceholders(len(ids))+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("read message queue: %w", err)
	}
	list, err := scanQueueRows(rows)
	if err != nil {
		return nil, fmt.Errorf("read message queue: %w", err)
	}
	for _, r := range list {
		out[r.ID] = r
	}
	return out, nil
}

// PendingQueueRow returns the contact's oldest pending row (success = 0 and
// attempts < max_attempts) for (channel, channel_id), if any: Mautic's queue
// dedup as DESIGN.md 6 item 6 keeps it.
func (db *DB) PendingQueueRow(ctx context.Context, q Querier, contactID int64, channel string, channelID int64) (QueueRow, bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+queueCols+" FROM "+db.T("message_queue")+
		" WHERE lead_id = ? AND channel = ? AND channel_id = ? AND success = 0 AND attempts < max_attempts ORDER BY id LIMIT 1",
		contactID, channel, channelID)
	if err != nil {
		return QueueRow{}, false, fmt.Errorf("find pending queue row: %w", err)
	}
	list, err := scanQueueRows(rows)
	if err != nil {
		return QueueRow{}, false, fmt.Errorf("find pending queue row: %w", err)
	}
	if len(list) == 0 {
		return QueueRow{}, false, nil
	}
	return list[0], true, nil
}

// NewQueueRow is what Enqueue needs to queue a deferred send.
type NewQueueRow struct {
	Channel       string
	ChannelID     int64
	EventID       int64
	ContactID     int64
	ScheduledDate time.Time
	Now           time.Time
}

// Enqueue inserts a message_queue row with the values Mautic writes when it
// queues a send (mautic-reference.md 5.1): priority 2, max_attempts 3,
// attempts 0, success 0, status pending, date_published now, options
// a:1:{i:0;a:0:{}}. It returns the new row's id.
func (db *DB) Enqueue(ctx context.Context, e Execer, r NewQueueRow) (int64, error) {
	res, err := e.ExecContext(ctx, "INSERT INTO "+db.T("message_queue")+
		" (channel, channel_id, event_id, lead_id, priority, max_attempts, attempts, success, status,"+
		" date_published, scheduled_date, last_attempt, date_sent, options) VALUES (?, ?, ?, ?, 2, 3, 0, 0, ?, ?, ?, NULL, NULL, ?)",
		r.Channel, r.ChannelID, nullInt(r.EventID), r.ContactID, QueuePending, r.Now.UTC(), r.ScheduledDate.UTC(), "a:1:{i:0;a:0:{}}")
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	return id, nil
}

// ClaimDueQueueRows locks up to limit due rows (success = 0, attempts <
// max_attempts, scheduled_date <= now) of the given channels with FOR UPDATE
// SKIP LOCKED, so concurrent workers and replicas each get their own rows.
// It must run inside a transaction; the locks last until it ends. The scan
// follows the message_scheduled_date index (scheduled_date, then id), which
// keeps SKIP LOCKED from locking rows it does not return.
//
// from is a lower bound of the scheduled dates to look at (see
// PendingQueueFloor): sent rows stay in the scheduled_date index forever,
// and a scan from the beginning would read them all on every claim.
func (db *DB) ClaimDueQueueRows(ctx context.Context, tx Querier, channels []string, from, now time.Time, limit int) ([]QueueRow, error) {
	if len(channels) == 0 || limit <= 0 {
		return nil, nil
	}
	args := []any{from.UTC(), now.UTC()}
	for _, c := range channels {
		args = append(args, c)
	}
	args = append(args, now.UTC(), limit)
	// Rows leased by a sidecar batch (sidecar_queue_leases) are skipped too:
	// their transaction has ended but their processing has not.
	query := func(hint string) string {
		return "SELECT " + queueCols + " FROM " + db.T("message_queue") + " q" + hint +
			" WHERE scheduled_date >= ? AND scheduled_date <= ? AND success = 0 AND attempts < max_attempts AND channel IN (" +
			inPlaceholders(len(channels)) + ")" +
			" AND NOT EXISTS (SELECT 1 FROM " + db.T("sidecar_queue_leases") + " l WHERE l.queue_id = q.id AND l.until > ?)" +
			" ORDER BY scheduled_date, id LIMIT ? FOR UPDATE SKIP LOCKED"
	}
	// The index is forced: when the pending rows are a small share of the
	// table, the server prefers message_success and sorts the due rows
	// (EXPLAIN: Using filesort), which locks every due row, so that
	// concurrent claims get none (internal/plans). A Mautic without an
	// index of that name runs the statement as the server plans it.
	hint := " FORCE INDEX (`" + db.prefix + "message_scheduled_date`)"
	if db.noScheduledIndex.Load() {
		hint = ""
	}
	rows, err := tx.QueryContext(ctx, query(hint), args...)
	if hint != "" && isMissingIndex(err) {
		db.noScheduledIndex.Store(true)
		rows, err = tx.QueryContext(ctx, query(""), args...)
	}
	if err != nil {
		return nil, fmt.Errorf("claim queue rows: %w", err)
	}
	list, err := scanQueueRows(rows)
	if err != nil {
		return nil, fmt.Errorf("claim queue rows: %w", err)
	}
	return list, nil
}

// isMissingIndex reports whether err is MySQL's "key does not exist in
// table" (an index hint naming a missing index).
func isMissingIndex(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1176
}

// PendingQueueFloor returns the earliest scheduled_date of the pending rows
// (success = 0, attempts < max_attempts) of the given channels, or zero
// when there are none. It reads through the message_success index, which
// holds the pending rows only, not the sent ones.
func (db *DB) PendingQueueFloor(ctx context.Context, q Querier, channels []string) (time.Time, error) {
	query := "SELECT MIN(scheduled_date) FROM " + db.T("message_queue") + " WHERE success = 0 AND attempts < max_attempts"
	var args []any
	if len(channels) > 0 {
		query += " AND channel IN (" + inPlaceholders(len(channels)) + ")"
		for _, c := range channels {
			args = append(args, c)
		}
	}
	var t sql.NullTime
	if err := q.QueryRowxContext(ctx, query, args...).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("pending queue floor: %w", err)
	}
	if !t.Valid {
		return time.Time{}, nil
	}
	return t.Time.UTC(), nil
}

// MarkQueueSent closes rows that were sent: success = 1, status 'sent',
// date_sent and last_attempt = now.
func (db *DB) MarkQueueSent(ctx context.Context, e Execer, ids []int64, now time.Time) error {
	return db.queueUpdate(ctx, e, "success = 1, status = '"+QueueSent+"', date_sent = ?, last_attempt = ?", ids, now.UTC(), now.UTC())
}

// MarkQueueCancelled closes rows without a send (contact now DNC on the
// channel, or without an address): success = 1, status 'cancelled',
// last_attempt = now.
func (db *DB) MarkQueueCancelled(ctx context.Context, e Execer, ids []int64, now time.Time) error {
	return db.queueUpdate(ctx, e, "success = 1, status = '"+QueueCancelled+"', last_attempt = ?", ids, now.UTC())
}

// MarkQueueFailed applies Mautic's failure path: attempts + 1,
// last_attempt = now, scheduled_date + 15 minutes, status 'rescheduled'.
func (db *DB) MarkQueueFailed(ctx context.Context, e Execer, ids []int64, now time.Time) error {
	return db.queueUpdate(ctx, e, "attempts = attempts + 1, last_attempt = ?, scheduled_date = DATE_ADD(scheduled_date, INTERVAL 15 MINUTE),"+
		" status = '"+QueueRescheduled+"'", ids, now.UTC())
}

// RescheduleQueueRow moves a still-blocked row (pause or frequency) to when
// the block lifts; as Mautic does, it counts as an attempt.
func (db *DB) RescheduleQueueRow(ctx context.Context, e Execer, id int64, to, now time.Time) error {
	return db.queueUpdate(ctx, e, "attempts = attempts + 1, last_attempt = ?, scheduled_date = ?, status = '"+QueueRescheduled+"'",
		[]int64{id}, now.UTC(), to.UTC())
}

func (db *DB) queueUpdate(ctx context.Context, e Execer, set string, ids []int64, args ...any) error {
	ids = uniqueIDs(ids)
	if len(ids) == 0 {
		return nil
	}
	args = append(args, int64Args(ids)...)
	if _, err := e.ExecContext(ctx, "UPDATE "+db.T("message_queue")+" SET "+set+" WHERE id IN ("+inPlaceholders(len(ids))+")", args...); err != nil {
		return fmt.Errorf("update message queue: %w", err)
	}
	return nil
}

// QueueDepth returns the number of pending rows (success = 0, attempts <
// max_attempts) of the given channels (all when empty), and how many of
// them are due at now.
func (db *DB) QueueDepth(ctx context.Context, q Querier, channels []string, now time.Time) (pending, due int64, err error) {
	query := "SELECT COUNT(*), COALESCE(SUM(scheduled_date <= ?), 0) FROM " + db.T("message_queue") + " WHERE success = 0 AND attempts < max_attempts"
	args := []any{now.UTC()}
	if len(channels) > 0 {
		query += " AND channel IN (" + inPlaceholders(len(channels)) + ")"
		for _, c := range channels {
			args = append(args, c)
		}
	}
	row := q.QueryRowxContext(ctx, query, args...)
	if err := row.Scan(&pending, &due); err != nil {
		return 0, 0, fmt.Errorf("queue depth: %w", err)
	}
	return pending, due, nil
}

// EventExists reports whether a campaign_events row has that id
// (message_queue.event_id references it).
func (db *DB) EventExists(ctx context.Context, q Querier, id int64) (bool, error) {
	var n int
	if err := q.QueryRowxContext(ctx, "SELECT COUNT(*) FROM "+db.T("campaign_events")+" WHERE id = ?", id).Scan(&n); err != nil {
		return false, fmt.Errorf("campaign event %d: %w", id, err)
	}
	return n > 0, nil
}
