package seed_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestBulk: rows go out in statements of at most max rows, Flush writes the
// rest, and a failing statement names its table.
func TestBulk(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	db.MustExec(t, "CREATE TABLE {p}bulk_probe (id INT NOT NULL PRIMARY KEY, label VARCHAR(16) NOT NULL)")
	b := seed.NewBulk(db.T("bulk_probe"), []string{"id", "label"}, 100)
	for i := 1; i <= 250; i++ {
		require.NoError(t, b.Add(ctx, db, i, "row"))
	}
	require.Equal(t, int64(200), b.Total, "two full statements written, 50 rows queued")
	require.Equal(t, 200, db.Count(t, "bulk_probe", ""))
	require.NoError(t, b.Flush(ctx, db))
	require.Equal(t, int64(250), b.Total)
	require.Equal(t, 250, db.Count(t, "bulk_probe", "label = 'row'"))
	require.NoError(t, b.Flush(ctx, db), "nothing queued: nothing written")

	require.NoError(t, b.Add(ctx, db, 1, "again"))
	err := b.Flush(ctx, db)
	require.ErrorContains(t, err, "insert into "+db.T("bulk_probe"))
}
