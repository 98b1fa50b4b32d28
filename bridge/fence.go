package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/store"
)

// writeBound bounds a batch's write transaction once its fence holds. It
// outlasts the lease on purpose: the fence has locked the batch's
// dispatches and contacts, claims skip or wait for them, and a write held
// up in the database (a lock wait on a contact's leads row, a slow disk)
// must finish rather than be cancelled, which would send the batch again
// when nobody holds it. It is longer than InnoDB's default lock wait
// timeout (50 s), so the database gives up first.
const writeBound = 2 * time.Minute

// fencedWrite is how a batch, of dispatches or of message_queue rows,
// writes its outcome after its sends: one transaction fenced by the
// batch's lease, which also releases the batch's contacts, run again on a
// lock conflict or a lost connection.
type fencedWrite struct {
	store    *store.DB
	log      *slog.Logger
	hard     context.Context // a hard stop: no more tries
	lease    store.Lease
	contacts []int64
	// fence locks, in tx, the batch's rows that the lease still owns and
	// returns their ids.
	fence func(ctx context.Context, tx *sqlx.Tx) (map[int64]bool, error)
	// write writes the outcome of the owned rows in tx.
	write func(ctx context.Context, tx *sqlx.Tx, owned map[int64]bool) error
}

// run writes the batch. ctx ends with the lease. Giving up would send the
// batch again when its lease ends, so conflicts and a database that went
// away are retried for as long as the lease lasts (the fence makes a write
// that did land before its answer was lost write nothing the second time),
// unless a hard stop wants the worker back.
func (w fencedWrite) run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := w.once(ctx)
		if err == nil {
			break
		}
		if (!store.Retryable(err) && !store.Unreachable(err)) || ctx.Err() != nil || w.hard.Err() != nil {
			return err
		}
		w.log.Debug("batch write failed, writing it again (nothing is re-sent)", "attempt", attempt+1, "err", err)
		time.Sleep(backoffDelay(attempt+1, 5*time.Millisecond, 200*time.Millisecond))
	}
	return nil
}

// once runs the transaction: the fence (the batch's rows and its contact
// leases) under ctx, which ends with the lease; the write after it under a
// context of its own (writeBound).
//
// The contacts' leases are fenced by ending them in the transaction, right
// after the batch's rows: the UPDATE locks the lease rows the batch still
// holds until the commit, so a claim that would take such a contact waits
// for the write and then routes with this batch's sends counted; the
// commit frees them together with the outcome (no window in which the
// outcome is written and the contacts still held, and no transaction of
// its own for the release). A write that fails leaves them to expire.
func (w fencedWrite) once(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeBound)
	defer cancel()
	tx, err := w.store.BeginTx(wctx)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	owned, err := w.fence(ctx, tx)
	if err != nil {
		return err
	}
	if err := w.store.ReleaseContacts(ctx, tx, w.lease, w.contacts); err != nil {
		return err
	}
	if err := w.write(wctx, tx, owned); err != nil {
		return err
	}
	return tx.Commit()
}
