package migrations_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/migrations"
)

func TestUpIsIdempotentAndPrefixed(t *testing.T) {
	db := testdb.New(t, testdb.WithoutMigrations())
	st, err := migrations.Read(db.DB.DB, db.Prefix)
	require.NoError(t, err)
	require.Equal(t, uint(0), st.Version)
	require.False(t, st.Current())

	require.NoError(t, migrations.Up(db.DSN, db.Prefix))
	require.NoError(t, migrations.Up(db.DSN, db.Prefix), "a second run changes nothing")
	st, err = migrations.Read(db.DB.DB, db.Prefix)
	require.NoError(t, err)
	require.True(t, st.Current(), st.String())
	require.Equal(t, migrations.Latest(), st.Version)

	for _, table := range []string{"sidecar_dispatches", "sidecar_dispatch_keys", "sidecar_sequences", "sidecar_contact_locks",
		"sidecar_sends", migrations.TableName} {
		require.Equal(t, 1, tableCount(t, db, db.Prefix+table), table)
	}
	require.Equal(t, 1, db.Count(t, "sidecar_sequences", "name = 'dispatch'"))
	// Mautic's tables are untouched: still there, and no sidecar table without the prefix.
	if db.Prefix != "" {
		require.Equal(t, 0, tableCount(t, db, "sidecar_dispatches"))
	}
	require.Equal(t, 1, tableCount(t, db, db.Prefix+"leads"))
}

func tableCount(t *testing.T, db *testdb.DB, name string) int {
	var n int
	require.NoError(t, db.Get(&n, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", name))
	return n
}
