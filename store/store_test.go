package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

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

func TestConcurrentAcceptSameKey(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	stores := []*store.DB{store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix), store.New(db.DB, db.Prefix)}
	ids := make(chan int64, 60)
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := stores[i%3].Accept(ctx, []store.NewDispatch{{ContactID: 9, MessageID: 1, Key: store.KeyFor("", 5, 6, 1, 9)}}, time.Now(), time.Hour)
			require.NoError(t, err)
			ids <- res[0].ID
		}(i)
	}
	wg.Wait()
	close(ids)
	first := int64(0)
	for id := range ids {
		if first == 0 {
			first = id
		}
		require.Equal(t, first, id, "every racer gets the same dispatch")
	}
	require.Equal(t, 1, db.Count(t, "sidecar_dispatches", ""))
}

func TestClaimAndContactLocks(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := store.New(db.DB, db.Prefix)
	now := time.Now().UTC()
	var batch []store.NewDispatch
	for c := int64(1); c <= 6; c++ {
		batch = append(batch, store.NewDispatch{ContactID: c, MessageID: 1, Key: store.KeyFor("", 0, 0, 1, c)})
	}
	_, err := s.Accept(ctx, batch, now, time.Hour)
	require.NoError(t, err)

	tx1, err := s.BeginTx(ctx)
	require.NoError(t, err)
	defer tx1.Rollback()
	a, err := s.Claim(ctx, tx1, now.Add(time.Second), 4)
	require.NoError(t, err)
	require.Len(t, a, 4)
	tx2, err := s.BeginTx(ctx)
	require.NoError(t, err)
	defer tx2.Rollback()
	b, err := s.Claim(ctx, tx2, now.Add(time.Second), 4)
	require.NoError(t, err)
	require.Len(t, b, 2, "the rows the first transaction holds are skipped")

	held1, err := s.LockContacts(ctx, tx1, []int64{1, 2, 3, 1})
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{1: true, 2: true, 3: true}, held1, "new lock rows are created and held")
	held2, err := s.LockContacts(ctx, tx2, []int64{2, 3, 5})
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{5: true}, held2, "contacts held elsewhere are skipped, not waited for")
	require.NoError(t, tx1.Rollback())
	held2, err = s.LockContacts(ctx, tx2, []int64{1, 2})
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{1: true, 2: true}, held2, "released by the first transaction's end")

	var plan string
	require.NoError(t, db.QueryRowx(db.Fmt("EXPLAIN FORMAT=JSON SELECT id FROM {p}sidecar_dispatches WHERE state = 'accepted' AND run_at <= ? ORDER BY run_at, id LIMIT 64"), now).Scan(&plan))
	require.NotContains(t, plan, "filesort", "the claim follows the (state, run_at) index")
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
