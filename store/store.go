// Package store is the sidecar's own tables (sidecar_*, behind Mautic's
// table prefix): dispatches, their duplicate keys, the id sequence and the
// per-contact lock rows. The schema is in migrations/.
//
// A batch of work is claimed in one short transaction (FOR UPDATE SKIP
// LOCKED, then a lease: a random token and an end time written on the
// dispatches, their contacts and the queue rows), processed outside any
// transaction, and written in a transaction fenced by the lease (Owned).
// A worker that dies leaves leases that expire; its late writes are
// fenced off. Deadlocks in the write transaction are simply retried: the
// lease keeps the work from other workers meanwhile.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// multi, when set, is a pool whose connections take several statements
	// in one round trip: Accept's fast path.
	multi *sql.DB

	idMu   sync.Mutex
	nextID int64
	lastID int64 // exclusive end of the current block
	block  int64
}

// New returns the store on db; prefix is Mautic's table prefix.
func New(db *sqlx.DB, prefix string) *DB {
	return &DB{db: db, prefix: prefix, block: 1000}
}

// SetMultiStatement gives Accept a pool of multi-statement connections
// (see mautic.DB.OpenMultiStatement): a batch of new requests is then
// recorded in one round trip.
func (s *DB) SetMultiStatement(m *sql.DB) { s.multi = m }

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
	return s.acceptBatch(ctx, batch, now, window, false)
}

// ErrUnknownContact is returned by AcceptKnown when a contact of the batch
// is not in Mautic's leads table; nothing was written.
var ErrUnknownContact = errors.New("accept: a contact of the batch does not exist")

// AcceptKnown is Accept for a batch whose contacts must all exist in
// Mautic's leads table. The check runs inside the batch's transaction
// (its first statement in the common case: new keys, known contacts), so
// the whole batch is still one round trip; the intake saves the round
// trip of reading the contacts before it. It returns ErrUnknownContact,
// with nothing written, when one of them does not exist.
func (s *DB) AcceptKnown(ctx context.Context, batch []NewDispatch, now time.Time, window time.Duration) ([]AcceptResult, error) {
	return s.acceptBatch(ctx, batch, now, window, true)
}

// contactGuard is a statement that fails with MySQL's error 1242 (a scalar
// subquery returned more than one row) unless every contact of batch is
// in leads: the subquery yields the two rows of its derived table exactly
// when the count of known contacts differs from the count asked for. An
// error is what stops a multi-statement trip before its COMMIT, on MySQL
// and MariaDB alike (MariaDB's DO would swallow it, so it is a SELECT).
// It is a plain read, as the intake's own check was.
func (s *DB) contactGuard(batch []NewDispatch) (string, []any) {
	ids := make([]int64, len(batch))
	for i, d := range batch {
		ids[i] = d.ContactID
	}
	ids = sortedUnique(ids)
	return "SELECT (SELECT 1 FROM (SELECT 1 AS n UNION ALL SELECT 2) AS two WHERE (SELECT COUNT(*) FROM " + s.T("leads") +
		" WHERE id IN (" + placeholders(len(ids)) + ")) <> ?)", append(int64s(ids), len(ids))
}

// guardTripped reports whether err is contactGuard's error.
func guardTripped(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1242
}

func (s *DB) acceptBatch(ctx context.Context, batch []NewDispatch, now time.Time, window time.Duration, known bool) ([]AcceptResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	ids, err := s.NextIDs(ctx, len(batch))
	if err != nil {
		return nil, err
	}
	var out []AcceptResult
	fast := true
	for attempt := 0; ; attempt++ {
		if fast && s.multi != nil {
			out, err = s.acceptOneTrip(ctx, batch, ids, now, known)
		} else {
			out, err = s.accept(ctx, batch, ids, now, window, fast, known)
		}
		if errors.Is(err, errSlowPath) {
			fast = false
			continue
		}
		if err == nil || attempt >= 8 || !Retryable(err) || ctx.Err() != nil {
			return out, err
		}
		// Racing duplicates: wait a little, then run again.
		time.Sleep(time.Duration(1+attempt) * time.Millisecond)
	}
}

// errSlowPath asks Accept to run again with the dedup read-back.
var errSlowPath = errors.New("accept: a key exists already")

func (s *DB) accept(ctx context.Context, batch []NewDispatch, ids []int64, now time.Time, window time.Duration, tryFast, known bool) ([]AcceptResult, error) {
	now = now.UTC()
	// A plain transaction: nothing here reads in a way isolation changes,
	// and the default level saves a round trip.
	tx, err := s.db.BeginTxx(ctx, nil)
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
	distinct := true
	for n := 1; n < len(order); n++ {
		if batch[order[n]].Key == batch[order[n-1]].Key {
			distinct = false
		}
	}
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
	owner := map[DedupKey]int64{}
	fast := false
	if distinct && tryFast {
		// The common case: every key is new. A duplicate makes the
		// statement fail as a whole (nothing written); the caller then
		// starts over on the slow path in a new transaction, so that the
		// shared locks of this failed insert are not held while the slow
		// path asks for exclusive ones (a deadlock between racers).
		_, err := tx.ExecContext(ctx, sb.String(), args...)
		switch {
		case err == nil:
			fast = true
			for i, d := range batch {
				owner[d.Key] = ids[i]
			}
		case isDuplicate(err):
			return nil, errSlowPath
		default:
			return nil, fmt.Errorf("accept: record keys: %w", err)
		}
	}
	if !fast {
		cutoff := now.Add(-window)
		// An expired key is taken over by the new dispatch. MySQL evaluates
		// the assignments left to right, so created_at is tested before it
		// changes.
		sb.WriteString(" ON DUPLICATE KEY UPDATE dispatch_id = IF(created_at < ?, VALUES(dispatch_id), dispatch_id)," +
			" created_at = IF(created_at < ?, VALUES(created_at), created_at)")
		args = append(args, cutoff, cutoff)
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return nil, fmt.Errorf("accept: record keys: %w", err)
		}
		if err := s.readOwners(ctx, tx, batch, owner); err != nil {
			return nil, err
		}
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
	if known {
		// Last: a plain read first in the transaction would take its
		// snapshot before the keys' upsert (readOwners reads locking, so
		// this no longer matters to it, but nothing here needs the check
		// earlier).
		q, args := s.contactGuard(batch)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			if guardTripped(err) {
				return nil, ErrUnknownContact
			}
			return nil, fmt.Errorf("accept: check contacts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("accept: commit: %w", err)
	}
	return out, nil
}

// acceptOneTrip is accept's common case in one round trip: a batch whose
// keys are all new is recorded by "START TRANSACTION; INSERT keys; INSERT
// dispatches; COMMIT" sent at once (known: the contact check first). A
// duplicate key or an unknown contact stops the statements there; the
// transaction is rolled back and the caller takes the slow path or
// ErrUnknownContact.
func (s *DB) acceptOneTrip(ctx context.Context, batch []NewDispatch, ids []int64, now time.Time, known bool) ([]AcceptResult, error) {
	now = now.UTC()
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return string(batch[order[a]].Key[:]) < string(batch[order[b]].Key[:])
	})
	for n := 1; n < len(order); n++ {
		if batch[order[n]].Key == batch[order[n-1]].Key {
			return nil, errSlowPath // duplicates inside the batch: resolved by the slow path
		}
	}
	var sb strings.Builder
	args := make([]any, 0, len(batch)*15)
	sb.WriteString("START TRANSACTION; ")
	if known {
		q, gargs := s.contactGuard(batch)
		sb.WriteString(q + "; ")
		args = append(args, gargs...)
	}
	sb.WriteString("INSERT INTO " + s.T("sidecar_dispatch_keys") + " (dedup_key, dispatch_id, created_at) VALUES ")
	for n, i := range order {
		if n > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?)")
		args = append(args, batch[i].Key[:], ids[i], now)
	}
	sb.WriteString("; INSERT INTO " + s.T("sidecar_dispatches") + " (id, state, contact_id, message_id, campaign_id, event_id," +
		" idempotency_key, attempts, trace, run_at, created_at, updated_at) VALUES ")
	for i, d := range batch {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
		args = append(args, ids[i], Accepted, d.ContactID, d.MessageID, nullID(d.CampaignID), nullID(d.EventID),
			nullStr(d.IdempotencyKey), 0, "[]", now, now, now)
	}
	sb.WriteString("; COMMIT")
	conn, err := s.multi.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	if _, err = conn.ExecContext(ctx, sb.String(), args...); err == nil {
		out := make([]AcceptResult, len(batch))
		for i := range batch {
			out[i] = AcceptResult{ID: ids[i]}
		}
		return out, nil
	}
	// The statements stopped at the error with the transaction open.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
		// Never hand a connection in an unknown state back to the pool.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	switch {
	case isDuplicate(err):
		return nil, errSlowPath
	case known && guardTripped(err):
		return nil, ErrUnknownContact
	}
	return nil, fmt.Errorf("accept: %w", err)
}

// readOwners reads which dispatch owns each key of batch, after the
// batch's upsert of the keys. It is a locking read, which reads the rows'
// latest versions: the upsert holds them already, so it waits for nothing,
// and it sees the keys other batches committed just before, which a plain
// read may not (its snapshot can leave out a batch whose commit released
// the upsert's lock wait a moment before the snapshot was taken; the
// replica soak met it: 6 of 50,000 calls answered 503, "a dedup key
// vanished").
func (s *DB) readOwners(ctx context.Context, tx *sqlx.Tx, batch []NewDispatch, owner map[DedupKey]int64) error {
	keyArgs := make([]any, 0, len(batch))
	for _, d := range batch {
		keyArgs = append(keyArgs, d.Key[:])
	}
	rows, err := tx.QueryContext(ctx, "SELECT dedup_key, dispatch_id FROM "+s.T("sidecar_dispatch_keys")+
		" WHERE dedup_key IN ("+placeholders(len(keyArgs))+") LOCK IN SHARE MODE", keyArgs...)
	if err != nil {
		return fmt.Errorf("accept: read keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k []byte
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			return fmt.Errorf("accept: read keys: %w", err)
		}
		var dk DedupKey
		copy(dk[:], k)
		owner[dk] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("accept: read keys: %w", err)
	}
	return nil
}

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// Unreachable reports whether err means the database could not be reached
// or went away (refused or reset connections, a connection the driver found
// broken, a server shutting down or killing its connections), as opposed to
// an answer about the statement. A transaction that failed so may have
// committed or not; a write fenced by its lease can run again safely.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's own bound, not the database's state
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// Server shutdown in progress; connection killed; too many
		// connections (the server is restarting or overloaded).
		return me.Number == 1053 || me.Number == 1927 || me.Number == 1040
	}
	var ne net.Error
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &ne) {
		return true
	}
	// Errors that lost their type on the way (formatted with %v).
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "invalid connection", "bad connection",
		"broken pipe", "i/o timeout", "unexpected EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
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

// Lease is the token of one batch's claim: it marks the dispatches, the
// contacts and the queue rows the batch holds, and fences its writes.
type Lease [16]byte

// NewLease returns a fresh random lease token.
func NewLease() Lease {
	var l Lease
	_, _ = rand.Read(l[:])
	return l
}

// ClaimBatch leases up to limit due dispatches for one batch, in one short
// transaction: it locks due accepted dispatches with FOR UPDATE SKIP LOCKED
// (oldest first), leases their contacts (a contact leased by another batch
// is skipped, so all routing of a contact is serialized across workers and
// replicas), keeps the first dispatch of each contact it got, and marks
// those with the lease and run_at = now + leaseFor, so that no other worker
// claims them until the lease ends. The batch then works outside any
// transaction and writes its outcome with WriteBatch-style fencing (Owned).
// A worker that dies leaves leases that simply expire.
func (s *DB) ClaimBatch(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) (Lease, []Dispatch, error) {
	lease := NewLease()
	tx, err := s.BeginTx(ctx)
	if err != nil {
		return lease, nil, fmt.Errorf("claim: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	claimed, err := s.Claim(ctx, tx, now, limit)
	if err != nil || len(claimed) == 0 {
		return lease, nil, err
	}
	contacts := make([]int64, 0, len(claimed))
	for _, d := range claimed {
		contacts = append(contacts, d.ContactID)
	}
	until := now.Add(leaseFor)
	held, err := s.LeaseContacts(ctx, tx, contacts, lease, until, now)
	if err != nil {
		return lease, nil, err
	}
	var out []Dispatch
	var ids []int64
	taken := map[int64]bool{}
	for _, d := range claimed {
		if !held[d.ContactID] || taken[d.ContactID] {
			continue
		}
		taken[d.ContactID] = true
		out = append(out, d) // RunAt stays the due time: the claim lag is measured from it
		ids = append(ids, d.ID)
	}
	if len(ids) > 0 {
		args := append([]any{lease[:], until}, int64s(ids)...)
		if _, err := tx.ExecContext(ctx, "UPDATE "+s.T("sidecar_dispatches")+" SET lease_owner = ?, run_at = ? WHERE id IN ("+
			placeholders(len(ids))+")", args...); err != nil {
			return lease, nil, fmt.Errorf("claim: lease dispatches: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return lease, nil, fmt.Errorf("claim: commit: %w", err)
	}
	return lease, out, nil
}

// LeaseContacts leases the contacts inside tx for lease until until, where
// no other lease is active at now, and returns the contacts now held by
// lease. Lock rows are created as needed; ids are taken in ascending order
// in one statement, so concurrent claims cannot deadlock.
func (s *DB) LeaseContacts(ctx context.Context, tx Queryer, ids []int64, lease Lease, until, now time.Time) (map[int64]bool, error) {
	ids = sortedUnique(ids)
	held := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return held, nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + s.T("sidecar_contact_locks") + " (contact_id, owner, until) VALUES ")
	args := make([]any, 0, len(ids)*3+1)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?)")
		args = append(args, id, lease[:], until.UTC())
	}
	// Left to right: owner changes first, then until follows the owner.
	sb.WriteString(" ON DUPLICATE KEY UPDATE owner = IF(until IS NULL OR until < ?, VALUES(owner), owner)," +
		" until = IF(owner = VALUES(owner), VALUES(until), until)")
	args = append(args, now.UTC())
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return nil, fmt.Errorf("lease contacts: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT contact_id FROM "+s.T("sidecar_contact_locks")+" WHERE contact_id IN ("+
		placeholders(len(ids))+") AND owner = ?", append(int64s(ids), lease[:])...)
	if err != nil {
		return nil, fmt.Errorf("lease contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("lease contacts: %w", err)
		}
		held[id] = true
	}
	return held, rows.Err()
}

// ReleaseContacts ends lease on the contacts (those it still holds). In a
// transaction it also locks those lease rows until the transaction ends:
// the fence of a batch's write (bridge's fencedWrite), so that a claim
// taking such a contact waits for the write.
func (s *DB) ReleaseContacts(ctx context.Context, e Queryer, lease Lease, ids []int64) error {
	ids = sortedUnique(ids)
	if len(ids) == 0 {
		return nil
	}
	if _, err := e.ExecContext(ctx, "UPDATE "+s.T("sidecar_contact_locks")+" SET owner = NULL, until = NULL WHERE contact_id IN ("+
		placeholders(len(ids))+") AND owner = ?", append(int64s(ids), lease[:])...); err != nil {
		return fmt.Errorf("release contacts: %w", err)
	}
	return nil
}

// Owned returns the dispatches among ids that lease still holds with at
// least margin left at now, and locks them until tx ends: the fence of a
// batch's writes. A claim takes over only leases that have ended and skips
// locked rows, so a dispatch Owned returns cannot change hands before the
// batch commits, however long the commit takes.
func (s *DB) Owned(ctx context.Context, tx Queryer, lease Lease, ids []int64, now time.Time, margin time.Duration) (map[int64]bool, error) {
	out, err := s.lockOwned(ctx, tx, "sidecar_dispatches", "id", "lease_owner", "run_at", lease, ids, now.Add(margin))
	if err != nil {
		return nil, fmt.Errorf("owned dispatches: %w", err)
	}
	return out, nil
}

// lockOwned locks the rows of table among ids that lease owns until after
// after, and returns their ids. The lock is taken by a no-op UPDATE: a
// locking SELECT of an id list would also lock the row after a run of
// consecutive ids, which makes batches wait for each other; an UPDATE under
// READ COMMITTED keeps only the rows it matched. The plain read after it
// sees exactly those rows, which nobody else can change now.
func (s *DB) lockOwned(ctx context.Context, tx Queryer, table, idCol, ownerCol, untilCol string, lease Lease, ids []int64, after time.Time) (map[int64]bool, error) {
	ids = sortedUnique(ids)
	out := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	where := " WHERE " + idCol + " IN (" + placeholders(len(ids)) + ") AND " + ownerCol + " = ? AND " + untilCol + " > ?"
	args := append(int64s(ids), lease[:], after.UTC())
	if _, err := tx.ExecContext(ctx, "UPDATE "+s.T(table)+" SET "+untilCol+" = "+untilCol+where, args...); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+idCol+" FROM "+s.T(table)+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// Abandon gives a batch's work back before anything was sent (a load error,
// a stop): the dispatches are due again at now and the contacts free.
func (s *DB) Abandon(ctx context.Context, lease Lease, ids, contacts []int64, now time.Time) error {
	ids = sortedUnique(ids)
	tx, err := s.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if len(ids) > 0 {
		args := append([]any{now.UTC()}, int64s(ids)...)
		args = append(args, lease[:])
		if _, err := tx.ExecContext(ctx, "UPDATE "+s.T("sidecar_dispatches")+" SET lease_owner = NULL, run_at = ? WHERE id IN ("+
			placeholders(len(ids))+") AND lease_owner = ?", args...); err != nil {
			return fmt.Errorf("abandon: %w", err)
		}
	}
	if err := s.ReleaseContacts(ctx, tx, lease, contacts); err != nil {
		return err
	}
	return tx.Commit()
}

// LeaseQueueRows leases message_queue rows (claimed by the caller with FOR
// UPDATE SKIP LOCKED in tx) until until.
func (s *DB) LeaseQueueRows(ctx context.Context, tx Queryer, ids []int64, lease Lease, until time.Time) error {
	ids = sortedUnique(ids)
	if len(ids) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + s.T("sidecar_queue_leases") + " (queue_id, owner, until) VALUES ")
	args := make([]any, 0, len(ids)*3)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?)")
		args = append(args, id, lease[:], until.UTC())
	}
	sb.WriteString(" ON DUPLICATE KEY UPDATE owner = VALUES(owner), until = VALUES(until)")
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("lease queue rows: %w", err)
	}
	return nil
}

// OwnedQueueRows returns the queue rows among ids that lease still holds
// with at least margin left at now, and locks their leases until tx ends
// (the fence of a queue batch's writes, as Owned).
func (s *DB) OwnedQueueRows(ctx context.Context, tx Queryer, lease Lease, ids []int64, now time.Time, margin time.Duration) (map[int64]bool, error) {
	out, err := s.lockOwned(ctx, tx, "sidecar_queue_leases", "queue_id", "owner", "until", lease, ids, now.Add(margin))
	if err != nil {
		return nil, fmt.Errorf("owned queue rows: %w", err)
	}
	return out, nil
}

// ReleaseQueueRows ends lease's leases on the queue rows (an UPDATE: a
// DELETE of an id list would lock the row after a run of consecutive ids).
// PurgeQueueLeases removes ended leases later.
func (s *DB) ReleaseQueueRows(ctx context.Context, e Queryer, lease Lease, ids []int64, now time.Time) error {
	ids = sortedUnique(ids)
	if len(ids) == 0 {
		return nil
	}
	args := append([]any{now.UTC()}, int64s(ids)...)
	args = append(args, lease[:])
	if _, err := e.ExecContext(ctx, "UPDATE "+s.T("sidecar_queue_leases")+" SET until = ? WHERE queue_id IN ("+placeholders(len(ids))+
		") AND owner = ?", args...); err != nil {
		return fmt.Errorf("release queue rows: %w", err)
	}
	return nil
}

// PurgeQueueLeases deletes queue leases that ended before cutoff.
//
// It deletes in chunks of 2,000 rows (short statements that do not hold up
// claims), up to 100,000 rows a call: more than the queue worker leases
// between two calls at any rate this machine reaches.
func (s *DB) PurgeQueueLeases(ctx context.Context, cutoff time.Time) error {
	const chunk, rounds = 2000, 50
	for range rounds {
		res, err := s.db.ExecContext(ctx, "DELETE FROM "+s.T("sidecar_queue_leases")+" WHERE until < ? LIMIT ?", cutoff.UTC(), chunk)
		if err != nil {
			return fmt.Errorf("purge queue leases: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n < chunk {
			return err
		}
	}
	return nil
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
		" run_at = VALUES(run_at), updated_at = VALUES(updated_at), lease_owner = NULL")
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

// Recent returns the dispatches updated since, newest first. The
// updated_at index is forced: when most rows are recent the server would
// rather read the whole table and sort it (internal/plans), where the index
// reads at most limit rows in order.
func (s *DB) Recent(ctx context.Context, since time.Time, limit int) ([]Dispatch, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+dispatchCols+" FROM "+s.T("sidecar_dispatches")+
		" FORCE INDEX (`"+s.prefix+"sidecar_dispatch_updated`)"+
		" WHERE updated_at >= ? ORDER BY updated_at DESC, id DESC LIMIT ?", since.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("recent dispatches: %w", err)
	}
	return scanDispatches(rows)
}

// Latest returns the limit most recently updated dispatches, newest first;
// only those in state when state is not empty. It reads at most limit rows,
// through the updated_at index, or the (state, updated_at) one for a state.
func (s *DB) Latest(ctx context.Context, state string, limit int) ([]Dispatch, error) {
	q := "SELECT " + dispatchCols + " FROM " + s.T("sidecar_dispatches")
	var args []any
	if state != "" {
		q += " FORCE INDEX (`" + s.prefix + "sidecar_dispatch_state_updated`) WHERE state = ?"
		args = append(args, state)
	} else {
		// On a small table the server may rather read it all and sort
		// (internal/plans); the newest rows are the end of this index.
		q += " FORCE INDEX (`" + s.prefix + "sidecar_dispatch_updated`)"
	}
	q += " ORDER BY updated_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("latest dispatches: %w", err)
	}
	out, err := scanDispatches(rows)
	if err != nil {
		return nil, fmt.Errorf("latest dispatches: %w", err)
	}
	return out, nil
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
