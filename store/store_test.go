package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/store"
)

func TestNextIDsUniqueAcrossProcesses(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	a, b := store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix)
	seen := map[int64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []*store.DB{a, b, a, b} {
		wg.Add(1)
		go func(s *store.DB) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				ids, err := s.NextIDs(ctx, 97)
				require.NoError(t, err)
				mu.Lock()
				for _, id := range ids {
					require.False(t, seen[id], "id %d handed out twice", id)
					require.Positive(t, id)
					seen[id] = true
				}
				mu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	require.Len(t, seen, 4*30*97)
}

func TestAcceptDedup(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	now := time.Now().UTC()
	nd := func(key string, contact int64) store.NewDispatch {
		return store.NewDispatch{ContactID: contact, MessageID: 1, IdempotencyKey: key, Key: store.KeyFor(key, 0, 0, 1, contact)}
	}
	res, err := s.Accept(ctx, []store.NewDispatch{nd("a", 1), nd("b", 1), nd("a", 1), nd("", 2), nd("", 2)}, now, time.Hour)
	require.NoError(t, err)
	require.False(t, res[0].Duplicate)
	require.False(t, res[1].Duplicate)
	require.True(t, res[2].Duplicate, "the same key in one batch")
	require.Equal(t, res[0].ID, res[2].ID)
	require.False(t, res[3].Duplicate)
	require.Equal(t, store.AcceptResult{ID: res[3].ID, Duplicate: true}, res[4], "the same tuple")
	require.Equal(t, 3, db.Count(t, "sidecar_dispatches", ""))

	res2, err := s.Accept(ctx, []store.NewDispatch{nd("a", 1)}, now.Add(30*time.Minute), time.Hour)
	require.NoError(t, err)
	require.Equal(t, store.AcceptResult{ID: res[0].ID, Duplicate: true}, res2[0], "inside the window")
	res3, err := s.Accept(ctx, []store.NewDispatch{nd("a", 1)}, now.Add(2*time.Hour), time.Hour)
	require.NoError(t, err)
	require.False(t, res3[0].Duplicate, "after the window")
	require.NotEqual(t, res[0].ID, res3[0].ID)

	require.NotEqual(t, store.KeyFor("x", 0, 0, 1, 1), store.KeyFor("", 0, 0, 1, 1))
	require.NotEqual(t, store.KeyFor("", 1, 2, 3, 4), store.KeyFor("", 12, 0, 3, 4))

	d, err := s.Get(ctx, res[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.Accepted, d.State)
	require.Equal(t, "a", d.IdempotencyKey)
	require.JSONEq(t, "[]", string(d.Trace))
	_, err = s.Get(ctx, 987654321)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestConcurrentAcceptSameKey: racers from three stores (one with the
// multi-statement pool) record batches that overlap in their keys; every
// racer gets, for each key, the same dispatch, and each key has exactly
// one. AcceptKnown as well: its contact check must not make the read-back
// of the keys miss those another racer committed meanwhile.
func TestConcurrentAcceptSameKey(t *testing.T) {
	for _, known := range []bool{false, true} {
		t.Run(fmt.Sprintf("known=%v", known), func(t *testing.T) {
			db := testdb.New(t)
			ctx := context.Background()
			db.MustExec(t, "INSERT INTO `{p}leads` (id, is_published, points) VALUES (9, 1, 0)")
			multi, err := db.Mautic.OpenMultiStatement(4)
			require.NoError(t, err)
			t.Cleanup(func() { multi.Close() })
			stores := []*store.DB{store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix)}
			stores[1].SetMultiStatement(multi)
			const racers, keys = 120, 6
			nd := func(k int) store.NewDispatch {
				return store.NewDispatch{ContactID: 9, MessageID: 1, Key: store.KeyFor("", 5, int64(k), 1, 9)}
			}
			var mu sync.Mutex
			got := map[int]map[int64]bool{}
			var wg sync.WaitGroup
			for i := 0; i < racers; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					ks := []int{i % keys, (i + 1) % keys, (i + 3) % keys}
					batch := []store.NewDispatch{nd(ks[0]), nd(ks[1]), nd(ks[2])}
					accept := stores[i%3].Accept
					if known {
						accept = stores[i%3].AcceptKnown
					}
					res, err := accept(ctx, batch, time.Now(), time.Hour)
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					for n, k := range ks {
						if got[k] == nil {
							got[k] = map[int64]bool{}
						}
						got[k][res[n].ID] = true
					}
				}(i)
			}
			wg.Wait()
			require.Len(t, got, keys)
			for k, ids := range got {
				require.Len(t, ids, 1, "key %d: every racer gets the same dispatch", k)
			}
			require.Equal(t, keys, db.Count(t, "sidecar_dispatches", ""))
		})
	}
}

func TestClaimBatchLeases(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var batch []store.NewDispatch
	for c := int64(1); c <= 6; c++ {
		batch = append(batch, store.NewDispatch{ContactID: c, MessageID: 1, Key: store.KeyFor("", 0, 0, 1, c)})
	}
	for k := 0; k < 2; k++ { // two more dispatches for contact 1
		batch = append(batch, store.NewDispatch{ContactID: 1, MessageID: 1, IdempotencyKey: fmt.Sprint("extra", k), Key: store.KeyFor(fmt.Sprint("extra", k), 0, 0, 1, 1)})
	}
	_, err := s.Accept(ctx, batch, now.Add(-time.Second), time.Hour)
	require.NoError(t, err)

	l1, a, err := s.ClaimBatch(ctx, now, 4, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, a, 4)
	contactsOf := func(list []store.Dispatch) []int64 {
		var out []int64
		for _, d := range list {
			out = append(out, d.ContactID)
		}
		return out
	}
	require.Equal(t, []int64{1, 2, 3, 4}, contactsOf(a))
	l2, b, err := s.ClaimBatch(ctx, now, 10, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6}, contactsOf(b), "leased dispatches and leased contacts are skipped")
	require.NotEqual(t, l1, l2)
	_, c, err := s.ClaimBatch(ctx, now, 10, 30*time.Second)
	require.NoError(t, err)
	require.Empty(t, c, "contact 1's other dispatches wait for its lease")

	ids := func(list []store.Dispatch) []int64 {
		var out []int64
		for _, d := range list {
			out = append(out, d.ID)
		}
		return out
	}
	tx, err := s.BeginTx(ctx)
	require.NoError(t, err)
	defer tx.Rollback()
	owned, err := s.Owned(ctx, tx, l1, append(ids(a), ids(b)...), now, time.Second)
	require.NoError(t, err)
	require.Len(t, owned, 4, "the fence: only l1's dispatches")
	require.NoError(t, tx.Rollback())

	// A batch that gives its work back: due again, contacts free.
	require.NoError(t, s.Abandon(ctx, l2, ids(b), contactsOf(b), now))
	_, d, err := s.ClaimBatch(ctx, now, 10, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6}, contactsOf(d))

	// A worker that died: its leases end and another claim takes the work.
	_, e, err := s.ClaimBatch(ctx, now.Add(31*time.Second), 10, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, e, 6, "every contact again, one dispatch each")
	tx, err = s.BeginTx(ctx)
	require.NoError(t, err)
	defer tx.Rollback()
	owned, err = s.Owned(ctx, tx, l1, ids(a), now.Add(31*time.Second), time.Second)
	require.NoError(t, err)
	require.Empty(t, owned, "the dead worker's lease has ended: its late writes are fenced off")
	owned, err = s.Owned(ctx, tx, l1, ids(a), now.Add(29500*time.Millisecond), time.Second)
	require.NoError(t, err)
	require.Empty(t, owned, "nor when less than the margin is left")
	require.NoError(t, tx.Rollback())

	var plan string
	require.NoError(t, db.QueryRowx(db.Fmt("EXPLAIN FORMAT=JSON SELECT id FROM {p}sidecar_dispatches WHERE state = 'accepted' AND run_at <= ? ORDER BY run_at, id LIMIT 64"), now).Scan(&plan))
	require.NotContains(t, plan, "filesort", "the claim follows the (state, run_at) index")
}

// A batch whose write is slow keeps its dispatches: once the fence has
// passed, a claim after the lease's end skips them instead of sending them
// again, and the neighbouring dispatches stay claimable.
func TestFenceHoldsUntilCommit(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var batch []store.NewDispatch
	for c := int64(1); c <= 4; c++ {
		batch = append(batch, store.NewDispatch{ContactID: c, MessageID: 1, Key: store.KeyFor("", 0, 0, 1, c)})
	}
	_, err := s.Accept(ctx, batch, now.Add(-time.Second), time.Hour)
	require.NoError(t, err)
	l1, a, err := s.ClaimBatch(ctx, now, 2, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, a, 2)

	tx, err := s.BeginTx(ctx)
	require.NoError(t, err)
	defer tx.Rollback()
	owned, err := s.Owned(ctx, tx, l1, []int64{a[0].ID, a[1].ID}, now, time.Second)
	require.NoError(t, err)
	require.Len(t, owned, 2)

	_, b, err := s.ClaimBatch(ctx, now.Add(31*time.Second), 10, 30*time.Second)
	require.NoError(t, err)
	var got []int64
	for _, d := range b {
		got = append(got, d.ContactID)
	}
	require.Equal(t, []int64{3, 4}, got, "the fenced dispatches are skipped, the others claimed")
	require.NoError(t, tx.Commit())
}

func TestQueueLeases(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	l := store.NewLease()
	tx, err := s.BeginTx(ctx)
	require.NoError(t, err)
	require.NoError(t, s.LeaseQueueRows(ctx, tx, []int64{3, 1, 2}, l, time.Now().Add(time.Minute)))
	require.NoError(t, tx.Commit())
	tx, err = s.BeginTx(ctx)
	require.NoError(t, err)
	owned, err := s.OwnedQueueRows(ctx, tx, l, []int64{1, 2, 3, 4}, time.Now(), time.Second)
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{1: true, 2: true, 3: true}, owned)
	require.NoError(t, s.ReleaseQueueRows(ctx, tx, l, []int64{1, 2}, time.Now()))
	require.NoError(t, tx.Commit())
	owned, err = s.OwnedQueueRows(ctx, db.DB, l, []int64{1, 2, 3}, time.Now(), time.Second)
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{3: true}, owned, "released leases are over")
	require.NoError(t, s.PurgeQueueLeases(ctx, time.Now().Add(2*time.Minute)))
	require.Equal(t, 0, db.Count(t, "sidecar_queue_leases", ""))

	// More ended leases than one chunk of the purge; the ones still running stay.
	many := make([]int64, 4500)
	for i := range many {
		many[i] = int64(i + 1)
	}
	require.NoError(t, s.LeaseQueueRows(ctx, db.DB, many, l, time.Now().Add(-time.Hour)))
	require.NoError(t, s.LeaseQueueRows(ctx, db.DB, []int64{9001, 9002}, l, time.Now().Add(time.Hour)))
	require.NoError(t, s.PurgeQueueLeases(ctx, time.Now()))
	require.Equal(t, 2, db.Count(t, "sidecar_queue_leases", ""))
}

func TestRetry(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	res, err := s.Accept(ctx, []store.NewDispatch{{ContactID: 1, MessageID: 1, Key: store.KeyFor("r", 0, 0, 1, 1)}}, time.Now(), time.Hour)
	require.NoError(t, err)
	_, err = s.Retry(ctx, res[0].ID, time.Now())
	require.ErrorIs(t, err, store.ErrNotFailed)
	db.MustExec(t, "UPDATE {p}sidecar_dispatches SET state = 'failed', trace = '[{\"channel\":\"email\"}]'")
	d, err := s.Retry(ctx, res[0].ID, time.Now())
	require.NoError(t, err)
	require.Equal(t, store.Accepted, d.State)
	require.Contains(t, string(d.Trace), "email", "the trace is kept")
	_, err = s.Retry(ctx, 424242, time.Now())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestLatest(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	now := time.Now().UTC()
	var batch []store.NewDispatch
	for c := int64(1); c <= 5; c++ {
		batch = append(batch, store.NewDispatch{ContactID: c, MessageID: 1, Key: store.KeyFor("", 0, 0, 1, c)})
	}
	res, err := s.Accept(ctx, batch, now.Add(-time.Hour), time.Hour)
	require.NoError(t, err)
	// Contact 2 failed a minute ago, contact 4 was sent just now.
	db.MustExec(t, "UPDATE {p}sidecar_dispatches SET state = 'failed', updated_at = ? WHERE id = ?", now.Add(-time.Minute), res[1].ID)
	db.MustExec(t, "UPDATE {p}sidecar_dispatches SET state = 'sent', updated_at = ? WHERE id = ?", now, res[3].ID)

	list, err := s.Latest(ctx, "", 3)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, []int64{res[3].ID, res[1].ID, res[4].ID}, []int64{list[0].ID, list[1].ID, list[2].ID},
		"newest update first, then the highest id")
	require.Equal(t, store.Sent, list[0].State)

	failed, err := s.Latest(ctx, store.Failed, 50)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, res[1].ID, failed[0].ID)

	none, err := s.Latest(ctx, store.Queued, 50)
	require.NoError(t, err)
	require.Empty(t, none)
}

// AcceptKnown writes a batch only when all its contacts are in leads, on
// the one-trip path (a multi-statement pool) and on the slow path (a key
// seen before, or no such pool); an unknown contact writes nothing.
func TestAcceptKnown(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	db.MustExec(t, "INSERT INTO `{p}leads` (id, is_published, points) VALUES (1, 1, 0), (2, 1, 0), (3, 1, 0)")
	multi, err := db.Mautic.OpenMultiStatement(2)
	require.NoError(t, err)
	t.Cleanup(func() { multi.Close() })
	oneTrip, plain := store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix)
	oneTrip.SetMultiStatement(multi)
	now := time.Now().UTC()
	nd := func(key string, contact int64) store.NewDispatch {
		return store.NewDispatch{ContactID: contact, MessageID: 1, IdempotencyKey: key, Key: store.KeyFor(key, 0, 0, 1, contact)}
	}
	rows := func() (keys, dispatches int) {
		require.NoError(t, db.DB.Get(&keys, "SELECT COUNT(*) FROM "+db.T("sidecar_dispatch_keys")))
		require.NoError(t, db.DB.Get(&dispatches, "SELECT COUNT(*) FROM "+db.T("sidecar_dispatches")))
		return keys, dispatches
	}
	for _, c := range []struct {
		name string
		s    *store.DB
	}{{"one trip", oneTrip}, {"slow path", plain}} {
		t.Run(c.name, func(t *testing.T) {
			k0, d0 := rows()
			p := c.name[:1]
			// Contact 4 does not exist: nothing of the batch is written.
			_, err := c.s.AcceptKnown(ctx, []store.NewDispatch{nd(p+"a", 1), nd(p+"b", 4), nd(p+"c", 2)}, now, time.Hour)
			require.ErrorIs(t, err, store.ErrUnknownContact)
			k, d := rows()
			require.Equal(t, [2]int{k0, d0}, [2]int{k, d})

			res, err := c.s.AcceptKnown(ctx, []store.NewDispatch{nd(p+"a", 1), nd(p+"c", 2), nd(p+"c", 2), nd(p+"d", 3)}, now, time.Hour)
			require.NoError(t, err)
			require.False(t, res[0].Duplicate)
			require.True(t, res[2].Duplicate)
			require.Equal(t, res[1].ID, res[2].ID)
			k, d = rows()
			require.Equal(t, [2]int{k0 + 3, d0 + 3}, [2]int{k, d})

			// A key seen before sends the one trip to the slow path, which
			// checks the contacts as well.
			_, err = c.s.AcceptKnown(ctx, []store.NewDispatch{nd(p+"a", 1), nd(p+"e", 5)}, now, time.Hour)
			require.ErrorIs(t, err, store.ErrUnknownContact)
			res, err = c.s.AcceptKnown(ctx, []store.NewDispatch{nd(p+"a", 1), nd(p+"e", 3)}, now, time.Hour)
			require.NoError(t, err)
			require.True(t, res[0].Duplicate)
			require.False(t, res[1].Duplicate)
			k, d = rows()
			require.Equal(t, [2]int{k0 + 4, d0 + 4}, [2]int{k, d})
		})
	}
}
