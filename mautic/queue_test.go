package mautic_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
)

// TestClaimWithoutScheduledIndex: the claim forces the message_scheduled_date
// index; on a Mautic database whose index has another name it still claims.
func TestClaimWithoutScheduledIndex(t *testing.T) {
	db, s, ctx := env(t)
	m := db.Mautic
	c, err := s.Contact(ctx, seed.Contact{Email: "1@example.test"})
	require.NoError(t, err)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	id, err := m.Enqueue(ctx, m, mautic.NewQueueRow{Channel: "email", ChannelID: 5, ContactID: c, ScheduledDate: now.Add(-time.Minute), Now: now})
	require.NoError(t, err)
	db.MustExec(t, "ALTER TABLE `{p}message_queue` DROP INDEX `{p}message_scheduled_date`")
	for range 2 { // the second claim no longer tries the hint
		tx := db.MustBegin()
		rows, err := m.ClaimDueQueueRows(ctx, tx, []string{"email"}, now.Add(-time.Hour), now, 10)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		require.Equal(t, id, rows[0].ID)
		require.NoError(t, tx.Rollback())
	}
}
