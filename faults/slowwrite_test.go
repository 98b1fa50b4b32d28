package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestSlowWriteKeepsTheFrequencyLimit: a batch's write transaction is held
// up in the database for longer than SIDECAR_LEASE (another client, as
// Mautic does when it updates a contact, holds the contact's leads row, on
// which the stats row's foreign key waits) while a second dispatch for the
// same contact comes in. The contact may receive 1 email a day: the second
// dispatch must not be sent before the first one's send is written, so it
// ends queued, and the contact gets exactly one email, even though the
// first batch overran its lease.
//
// This used to fail: the write was given up when the lease ended, the
// contact's lease was not part of the write's fence, so another worker
// routed the second dispatch while the first send was unwritten, and the
// first dispatch was sent again later (3 emails for a limit of 1). The
// fence now locks the batch's contacts too, and a write that passed its
// fence is not cancelled at the lease's end.
func TestSlowWriteKeepsTheFrequencyLimit(t *testing.T) {
	db := testdb.New(t)
	ds := newDataset(t, db)
	msg := ds.message("email")
	evs := ds.events(2)
	ds.contacts(1, 1, func(int64) reach { return reach{email: true} })
	ds.limit(1, 1, "email", 1, "DAY")
	prov := startProviders(t)
	const lease = 2 * time.Second
	sc := startSidecar(t, "slow-write", "", with(merge(baseEnv(db), prov.env()), "SIDECAR_LEASE="+lease.String(), "SIDECAR_WORKERS=4"))

	ctx := context.Background()
	tx, err := db.BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // released below; a no-op then
	var id int64
	require.NoError(t, tx.GetContext(ctx, &id, "SELECT id FROM "+db.T("leads")+" WHERE id = 1 FOR UPDATE"))

	first := post(t, sc.URL(), ds.form(1, msg, evs[0], ""))
	eventually(t, 10*time.Second, "the first email to be sent", func() bool { return prov.smtp.Count() == 1 })
	second := post(t, sc.URL(), ds.form(1, msg, evs[1], ""))
	// The first batch's write now waits for the leads row; hold it well
	// past the lease, watching for a second email.
	held := time.Now()
	for time.Since(held) < 3*lease {
		require.Equalf(t, 1, prov.smtp.Count(), "a second email was sent to the contact while the first batch's write was held up "+
			"%s (lease %s): the contact's lease ended before the first send was written, and the frequency limit (1 a day) was read without it",
			time.Since(held).Round(100*time.Millisecond), lease)
		time.Sleep(50 * time.Millisecond) // the fault lasts this long whatever happens
	}
	require.NoError(t, tx.Rollback())
	eventually(t, 60*time.Second, "both dispatches to end", func() bool { return pending(t, db) == 0 })
	rows := dispatches(t, db)
	emails := prov.smtp.Count()
	require.Equalf(t, 1, emails, "emails to the contact (limit 1 a day)")
	require.Equal(t, "sent", rows[first].State)
	require.Equalf(t, "queued", rows[second].State, "the second dispatch is queued by the frequency limit: %s", rows[second].Trace)
	require.Equal(t, 1, db.Count(t, "email_stats", "lead_id = 1"))
	report(t, measured{Fault: "a write held up " + seconds(3*lease) + " (over the lease) with a second dispatch for the contact",
		Requests: 2, Accepted: 2, Sent: 1, Deliveries: emails, Note: fmt.Sprintf("limit 1 email a day; the second dispatch %s", rows[second].State)})
}
