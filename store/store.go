// Package store is the sidecar's own tables (sidecar_*, behind Mautic's
// table prefix): dispatches, their duplicate keys, the id sequence and the
// per-contact lock rows. The schema is in migrations/.
//
// Claims use FOR UPDATE SKIP LOCKED inside the caller's READ COMMITTED
// transaction: a claimed dispatch stays locked until that transaction ends,
// so a worker that dies (its connection closes) or overruns its deadline
// (database/sql rolls back) releases its work at once.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// Dispatch states (DESIGN.md section 5).
const (
	Accepted = "accepted"
	Sent     = "sent"
	Queued   = "queued"
	Failed   = "failed"
)

// ErrNotFound is returned when a dispatch does not exist.
var ErrNotFound = errors.New("dispatch not found")

// ErrNotFailed is returned by Retry for a dispatch that is not failed.
var ErrNotFailed = errors.New("dispatch is not failed")

// Dispatch is a sidecar_dispatches row.
type Dispatch struct {
	ID             int64
	State          string
	ContactID      int64
	MessageID      int64
	CampaignID     int64 // 0 when absent
	EventID        int64 // 0 when absent
	IdempotencyKey string
	Channel        string // "" when none
	ChannelID      int64
	QueueID        int64
	Attempts       int
	Trace          []byte // JSON array
	Progress       []byte // JSON object, the pipeline's own state; nil when none
	RunAt          time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// DB is the sidecar's tables in Mautic's database.
type DB struct {
	db     *sqlx.DB
	prefix string

	idMu   sync.Mutex
	nextID int64
	lastID int64 // exclusive end of the current block
	block  int64
}

// New returns the store on db; prefix is Mautic's table prefix.
func New(db *sqlx.DB, prefix string) *DB {
	return &DB{db: db, prefix: prefix, block: 1000}
}

// T returns a prefixed, quoted table name.
func (s *DB) T(table string) string { return "`" + s.prefix + table + "`" }

// Queryer is what reads in a transaction need.
type Queryer interface {
	sqlx.ExtContext
}

// BeginTx starts a READ COMMITTED transaction: every statement sees the
// latest committed rows, and locking reads take no gap locks.
func (s *DB) BeginTx(ctx context.Context) (*sqlx.Tx, error) {
	return s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
}

// NextIDs returns n fresh dispatch ids. Ids come in blocks reserved from
// sidecar_sequences (hi/lo), so they are unique across replicas without
// relying on AUTO_INCREMENT values of multi-row inserts.
func (s *DB) NextIDs(ctx context.Context, n int) ([]int64, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	out := make([]int64, 0, n)
	for len(out) < n {
		if s.nextID >= s.lastID {
			size := s.block
			if want := int64(n - len(out)); want > size {
				size = want
			}
			end, err := s.reserve(ctx, size)
			if err != nil {
				return nil, err
			}
			s.nextID, s.lastID = end-size, end
		}
		out = append(out, s.nextID)
		s.nextID++
	}
	return out, nil
}

func (s *DB) reserve(ctx context.Context, size int64) (int64, error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return 0, fmt.Errorf("reserve dispatch ids: %w", err)
	}
	defer conn.Close()
	res, err := conn.ExecContext(ctx, "UPDATE "+s.T("sidecar_sequences")+" SET next_id = LAST_INSERT_ID(next_id + ?) WHERE name = 'dispatch'", size)
	if err != nil {
		return 0, fmt.Errorf("reserve dispatch ids: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return 0, errors.New("reserve dispatch ids: the sequence row is missing (run `sidecar migrate up`)")
	}
	end, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("reserve dispatch ids: %w", err)
	}
	return end, nil
}

// DedupKey is the sha256 of a duplicate-detection key.
type DedupKey [32]byte

// KeyFor returns the dedup key of a request (DESIGN.md 6.6): the
// idempotency key when given, else (campaign, event, message, contact) with
// absent ids as 0. The two key spaces are separate.
func KeyFor(idempotencyKey string, campaignID, eventID, messageID, contactID int64) DedupKey {
	if idempotencyKey != "" {
		return sha256.Sum256([]byte("idempotency\x00" + idempotencyKey))
	}
	return sha256.Sum256([]byte("tuple\x00" + strconv.FormatInt(campaignID, 10) + "/" + strconv.FormatInt(eventID, 10) + "/" +
		strconv.FormatInt(messageID, 10) + "/" + strconv.FormatInt(contactID, 10)))
}

// NewDispatch is an accepted request.
type NewDispatch struct {
	ContactID      int64
	MessageID      int64
	CampaignID     int64
	EventID        int64
	IdempotencyKey string
	Key            DedupKey
}

// AcceptResult is the outcome for one NewDispatch.
type AcceptResult struct {
	ID        int64
	Duplicate bool
}

// Accept records a batch of requests in one transaction: each gets a new
// dispatch in state accepted, unless its dedup key was seen within window,
// in which case it gets the first dispatch's id and Duplicate. Duplicates
// inside the batch resolve to the first occurrence. Deadlocks and lock
// timeouts are retried. When Accept returns nil, every new dispatch is
// committed.
func (s *DB) Accept(ctx context.Context, batch []NewDispatch, now time.Time, window time.Duration) ([]AcceptResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	ids, err := s.NextIDs(ctx, len(batch))
	if err != nil {
		return nil, err
	}
	var out []AcceptResult
	for attempt := 0; ; attempt++ {
		out, err = s.accept(ctx, batch, ids, now, window)
		if err == nil || attempt >= 4 || !Retryable(err) || ctx.Err() != nil {
			return out, err
		}
	}
}

func (s *DB) accept(ctx context.Context, batch []NewDispatch, ids []int64, now time.Time, window time.Duration) ([]AcceptResult, error) {
	now = now.UTC()
	tx, err := s.BeginTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	// Keys in a stable order: concurrent batches lock them in the same order.
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return string(batch[order[a]].Key[:]) < string(batch[order[b]].Key[:])
	})
	cutoff := now.Add(-window)
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + s.T("sidecar_dispatch_keys") + " (dedup_key, dispatch_id, created_at) VALUES ")
	args := make([]any, 0, len(batch)*3+2)
	for n, i := range order {
		if n > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?)")
		args = append(args, batch[i].Key[:], ids[i], now)
	}
	// An expired key is taken over by the new dispatch. MySQL evaluates the
	// assignments left to right, so created_at is tested before it changes.
	sb.WriteString(" ON DUPLICATE KEY UPDATE dispatch_id = IF(created_at < ?, VALUES(dispatch_id), dispatch_id)," +
		" created_at = IF(created_at < ?, VALUES(created_at), created_at)")
	args = append(args, cutoff, cutoff)
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("accept: record keys: %w", err)
	}
	keyArgs := make([]any, 0, len(batch))
	for _, d := range batch {
		keyArgs = append(keyArgs, d.Key[:])
	}
	rows, err := tx.QueryContext(ctx, "SELECT dedup_key, dispatch_id FROM "+s.T("sidecar_dispatch_keys")+
		" WHERE dedup_key IN ("+placeholders(len(keyArgs))+")", keyArgs...)
	if err != nil {
		return nil, fmt.Errorf("accept: read keys: %w", err)
	}
	owner := map[DedupKey]int64{}
	for rows.Next() {
		var k []byte
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("accept: read keys: %w", err)
		}
		var dk DedupKey
		copy(dk[:], k)
		owner[dk] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accept: read keys: %w", err)
	}
	out := make([]AcceptResult, len(batch))
	var ins [][]any
	for i, d := range batch {
		id, ok := owner[d.Key]
		if !ok {
			return nil, errors.New("accept: a dedup key vanished inside the transaction")
		}
		if id != ids[i] {
			out[i] = AcceptResult{ID: id, Duplicate: true}
			continue
		}
		out[i] = AcceptResult{ID: id}
		ins = append(ins, []any{id, Accepted, d.ContactID, d.MessageID, nullID(d.CampaignID), nullID(d.EventID),
			nullStr(d.IdempotencyKey), 0, "[]", now, now, now})
	}
	if len(ins) > 0 {
		var contacts []int64
		for _, r := range ins {
			contacts = append(contacts, r[2].(int64))
		}
		if _, err := s.EnsureContactLocks(ctx, tx, contacts); err != nil {
			return nil, err
		}
		var q strings.Builder
		q.WriteString("INSERT INTO " + s.T("sidecar_dispatches") + " (id, state, contact_id, message_id, campaign_id, event_id," +
			" idempotency_key, attempts, trace, run_at, created_at, updated_at) VALUES ")
		iargs := make([]any, 0, len(ins)*12)
		for n, r := range ins {
			if n > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
			iargs = append(iargs, r...)
		}
		if _, err := tx.ExecContext(ctx, q.String(), iargs...); err != nil {
			return nil, fmt.Errorf("accept: insert dispatches: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("accept: commit: %w", err)
	}
	return out, nil
}

// Retryable reports whether err is a deadlock or lock wait timeout, after
// which the whole transaction may simply run again.
func Retryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	return false
}

const dispatchCols = "id, state, contact_id, message_id, campaign_id, event_id, idempotency_key, channel, channel_id, queue_id," +
	" attempts, trace, progress, run_at, created_at, updated_at"

func scanDispatches(rows *sql.Rows) ([]Dispatch, error) {
	defer rows.Close()
	var out []Dispatch
	for rows.Next() {
		var (
			d                            Dispatch
			campaign, event, chID, queue sql.NullInt64
			idem, channel                sql.NullString
			trace, progress              []byte
		)
		if err := rows.Scan(&d.ID, &d.State, &d.ContactID, &d.MessageID, &campaign, &event, &idem, &channel, &chID, &queue,
			&d.Attempts, &trace, &progress, &d.RunAt, &d.CreatedAt, &d.UpdatedAt); err != nil {
			return nil, err
		}
		d.CampaignID, d.EventID, d.ChannelID, d.QueueID = campaign.Int64, event.Int64, chID.Int64, queue.Int64
		d.IdempotencyKey, d.Channel = idem.String, channel.String
		d.Trace = append([]byte(nil), trace...)
		if progress != nil {
			d.Progress = append([]byte(nil), progress...)
		}
		d.RunAt, d.CreatedAt, d.UpdatedAt = d.RunAt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// Claim locks up to limit accepted dispatches that are due at now, oldest
// first, skipping rows other transactions hold. The scan follows the
// (state, run_at) index, so SKIP LOCKED does not lock rows it skips.
func (s *DB) Claim(ctx context.Context, tx Queryer, now time.Time, limit int) ([]Dispatch, error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+dispatchCols+" FROM "+s.T("sidecar_dispatches")+
		" WHERE state = ? AND run_at <= ? ORDER BY run_at, id LIMIT ? FOR UPDATE SKIP LOCKED", Accepted, now.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	out, err := scanDispatches(rows)
	if err != nil {
		return nil, fmt.Errorf("claim dispatches: %w", err)
	}
	return out, nil
}

// LockContacts takes the lock row of each contact inside tx, skipping
// contacts another transaction holds, and returns the contacts now held.
// Holding a contact's row serializes all routing of that contact across
// workers and replicas until tx ends. Lock rows are normally created at
// intake; missing ones (a contact queued by Mautic itself) are created here
// in autocommit mode, never inside tx, so no transaction ever waits on
// another one's uncommitted lock row.
func (s *DB) LockContacts(ctx context.Context, tx Queryer, ids []int64) (map[int64]bool, error) {
	ids = sortedUnique(ids)
	held := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return held, nil
	}
	lock := func(list []int64) error {
		rows, err := tx.QueryContext(ctx, "SELECT contact_id FROM "+s.T("sidecar_contact_locks")+" WHERE contact_id IN ("+
			placeholders(len(list))+") ORDER BY contact_id FOR UPDATE SKIP LOCKED", int64s(list)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			held[id] = true
		}
		return rows.Err()
	}
	if err := lock(ids); err != nil {
		return nil, fmt.Errorf("lock contacts: %w", err)
	}
	var rest []int64
	for _, id := range ids {
		if !held[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return held, nil
	}
	created, err := s.EnsureContactLocks(ctx, s.db, rest)
	if err != nil {
		return nil, err
	}
	if len(created) > 0 {
		if err := lock(created); err != nil {
			return nil, fmt.Errorf("lock contacts: %w", err)
		}
	}
	return held, nil
}

// EnsureContactLocks creates the lock rows missing for ids, through q (the
// intake's short transaction, or the database in autocommit mode), and
// returns the ids it found missing. Only missing rows are inserted: an
// INSERT IGNORE of an existing row would wait for a worker holding it.
func (s *DB) EnsureContactLocks(ctx context.Context, q Queryer, ids []int64) ([]int64, error) {
	ids = sortedUnique(ids)
	if len(ids) == 0 {
		return nil, nil
	}
	exists := map[int64]bool{}
	rows, err := q.QueryContext(ctx, "SELECT contact_id FROM "+s.T("sidecar_contact_locks")+" WHERE contact_id IN ("+
		placeholders(len(ids))+")", int64s(ids)...)
	if err != nil {
		return nil, fmt.Errorf("contact lock rows: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("contact lock rows: %w", err)
		}
		exists[id] = true
	}
	rows.Close()
	var missing []int64
	for _, id := range ids {
		if !exists[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	// Ascending ids in one statement: concurrent inserts cannot deadlock.
	vals := strings.TrimSuffix(strings.Repeat("(?),", len(missing)), ",")
	if _, err := q.ExecContext(ctx, "INSERT IGNORE INTO "+s.T("sidecar_contact_locks")+" (contact_id) VALUES "+vals, int64s(missing)...); err != nil {
		return nil, fmt.Errorf("contact lock rows: %w", err)
	}
	return missing, nil
}

// Save writes the new state of dispatches held by tx (one statement).
func (s *DB) Save(ctx context.Context, tx Queryer, list []Dispatch, now time.Time) error {
	if len(list) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + s.T("sidecar_dispatches") + " (" + dispatchCols + ") VALUES ")
	args := make([]any, 0, len(list)*16)
	for i, d := range list {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
		var progress any
		if d.Progress != nil {
			progress = d.Progress
		}
		trace := d.Trace
		if trace == nil {
			trace = []byte("[]")
		}
		args = append(args, d.ID, d.State, d.ContactID, d.MessageID, nullID(d.CampaignID), nullID(d.EventID), nullStr(d.IdempotencyKey),
			nullStr(d.Channel), nullID(d.ChannelID), nullID(d.QueueID), d.Attempts, trace, progress, d.RunAt.UTC(), d.CreatedAt.UTC(), now.UTC())
	}
	sb.WriteString(" ON DUPLICATE KEY UPDATE state = VALUES(state), channel = VALUES(channel), channel_id = VALUES(channel_id)," +
		" queue_id = VALUES(queue_id), attempts = VALUES(attempts), trace = VALUES(trace), progress = VALUES(progress)," +
		" run_at = VALUES(run_at), updated_at = VALUES(updated_at)")
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("save dispatches: %w", err)
	}
	return nil
}

// Get returns one dispatch.
func (s *DB) Get(ctx context.Context, id int64) (Dispatch, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+dispatchCols+" FROM "+s.T("sidecar_dispatches")+" WHERE id = ?", id)
	if err != nil {
		return Dispatch{}, fmt.Errorf("get dispatch %d: %w", id, err)
	}
	list, err := scanDispatches(rows)
	if err != nil {
		return Dispatch{}, fmt.Errorf("get dispatch %d: %w", id, err)
	}
	if len(list) == 0 {
		return Dispatch{}, fmt.Errorf("dispatch %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// Recent returns the dispatches updated since, newest first.
func (s *DB) Recent(ctx context.Context, since time.Time, limit int) ([]Dispatch, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+dispatchCols+" FROM "+s.T("sidecar_dispatches")+
		" WHERE updated_at >= ? ORDER BY updated_at DESC, id DESC LIMIT ?", since.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("recent dispatches: %w", err)
	}
	return scanDispatches(rows)
}

// Backlog returns the number of accepted dispatches (not yet routed to an
// end state).
func (s *DB) Backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowxContext(ctx, "SELECT COUNT(*) FROM "+s.T("sidecar_dispatches")+" WHERE state = ?", Accepted).Scan(&n); err != nil {
		return 0, fmt.Errorf("backlog: %w", err)
	}
	return n, nil
}

// OldestDue returns the run_at of the oldest due accepted dispatch (zero
// when none): the claim lag is now minus this.
func (s *DB) OldestDue(ctx context.Context, now time.Time) (time.Time, error) {
	var t sql.NullTime
	err := s.db.QueryRowxContext(ctx, "SELECT MIN(run_at) FROM "+s.T("sidecar_dispatches")+" WHERE state = ? AND run_at <= ?", Accepted, now.UTC()).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("oldest due dispatch: %w", err)
	}
	if !t.Valid {
		return time.Time{}, nil
	}
	return t.Time.UTC(), nil
}

// StateCounts returns the number of dispatches per state.
func (s *DB) StateCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT state, COUNT(*) FROM "+s.T("sidecar_dispatches")+" GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("dispatch states: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("dispatch states: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// Retry moves a failed dispatch back to accepted, due now, keeping its
// trace and attempts. It returns ErrNotFound or ErrNotFailed.
func (s *DB) Retry(ctx context.Context, id int64, now time.Time) (Dispatch, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE "+s.T("sidecar_dispatches")+" SET state = ?, progress = NULL, channel = NULL, channel_id = NULL,"+
		" queue_id = NULL, run_at = ?, updated_at = ? WHERE id = ? AND state = ?", Accepted, now.UTC(), now.UTC(), id, Failed)
	if err != nil {
		return Dispatch{}, fmt.Errorf("retry dispatch %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return s.Get(ctx, id)
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return Dispatch{}, err
	}
	return d, fmt.Errorf("dispatch %d is %s: %w", id, d.State, ErrNotFailed)
}

// PurgeKeys deletes dedup keys created before cutoff, at most limit rows.
func (s *DB) PurgeKeys(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM "+s.T("sidecar_dispatch_keys")+" WHERE created_at < ? LIMIT ?", cutoff.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("purge dedup keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func int64s(ids []int64) []any {
	out := make([]any, len(ids))
	for i, v := range ids {
		out[i] = v
	}
	return out
}

func sortedUnique(ids []int64) []int64 {
	cp := append([]int64(nil), ids...)
	sort.Slice(cp, func(i, j int) bool { return cp[i] < cp[j] })
	out := make([]int64, 0, len(cp))
	for _, v := range cp {
		if v > 0 && (len(out) == 0 || out[len(out)-1] != v) {
			out = append(out, v)
		}
	}
	return out
}

func nullID(v int64) any {
	if v <= 0 {
		return nil
	}
	return v
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
