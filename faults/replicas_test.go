package faults

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestReplicasWithDuplicateWebhooks: three `sidecar serve` processes on one
// database behind a round-robin "load balancer"; Mautic posts every
// webhook twice, each copy to a different replica at the same moment (half
// of them with an idempotency key, half deduplicated by campaign, event,
// message and contact). Every contact gets five campaign events of a
// message on email then SMS, and may receive at most 2 emails and 2 SMS a
// day. Each pair of copies resolves to one dispatch; every dispatch is
// routed once, by one replica; no contact gets more than its limits.
func TestReplicasWithDuplicateWebhooks(t *testing.T) {
	contacts := int64(pick(500, 5000))
	const events = 5
	db := testdb.New(t)
	ds := newDataset(t, db)
	msg := ds.message("email", "sms")
	evs := ds.events(events)
	ds.contacts(1, contacts, func(int64) reach { return reach{email: true, mobile: true} })
	ds.limit(1, contacts, "email", 2, "DAY")
	ds.limit(1, contacts, "sms", 2, "DAY")
	prov := startProviders(t)
	prov.http.SetFault("", sandbox.Behavior{Delay: 10 * time.Millisecond})
	env := with(merge(baseEnv(db), prov.env()), "SIDECAR_WORKERS=8", "SIDECAR_LEASE=10s")
	var replicas []*sidecar
	for r := 0; r < 3; r++ {
		replicas = append(replicas, startSidecar(t, fmt.Sprintf("replica-%d", r), "", env))
	}

	// Request 2j and 2j+1 are the two copies of webhook j.
	webhooks := int(contacts) * events
	form := func(i int) url.Values {
		j := i / 2
		c, e := int64(j/events)+1, evs[j%events]
		key := ""
		if j%2 == 0 {
			key = fmt.Sprintf("rep-%d-%d", c, e)
		}
		return ds.form(c, msg, e, key)
	}
	l := startLoad(loadSpec{N: 2 * webhooks, Clients: 24, For: 5 * time.Minute, Form: form,
		URL: func(i int) string { return replicas[(i/2+i%2)%3].URL() }})
	res := l.Wait()
	fc := res.finalCounts()
	require.Equalf(t, 2*webhooks, fc["200"], "every copy answered 200: %s", counts(fc))
	pairsAcrossBatches := 0
	for j := 0; j < webhooks; j++ {
		a, b := res.Final[2*j], res.Final[2*j+1]
		require.Equalf(t, a.ID, b.ID, "webhook %d: both copies name the same dispatch", j)
		require.Truef(t, a.Dup != b.Dup, "webhook %d: one copy accepted, the other a duplicate (%v, %v)", j, a.Dup, b.Dup)
		if a.Got.After(b.Sent) && b.Got.After(a.Sent) {
			pairsAcrossBatches++ // the two copies were in flight at the same time
		}
	}
	eventually(t, 3*time.Minute, "every dispatch to reach a terminal state", func() bool { return pending(t, db) == 0 })

	rows := dispatches(t, db)
	require.Len(t, rows, webhooks, "one dispatch per webhook")
	routed := map[string]int{}
	for _, sc := range replicas {
		for id, n := range routedIDs(t, sc) {
			routed[id] += n
		}
	}
	require.Len(t, routed, webhooks, "every dispatch was routed")
	perReplica := make([]int, len(replicas))
	for r, sc := range replicas {
		perReplica[r] = len(routedIDs(t, sc))
	}
	for id, n := range routed {
		require.Equalf(t, 1, n, "dispatch %s routed %d times", id, n)
	}
	per := map[int64]map[string]int{}
	for _, r := range rows {
		if per[r.ContactID] == nil {
			per[r.ContactID] = map[string]int{}
		}
		per[r.ContactID][r.State+"/"+r.Channel.String]++
		if r.State == "sent" {
			require.Equalf(t, 1, r.Attempts, "dispatch %d: one provider call", r.ID)
		}
	}
	d := prov.deliveries()
	// Both channels at their limit: queued on the first one (DESIGN.md 6.6).
	want := map[string]int{"sent/email": 2, "sent/sms": 2, "queued/email": events - 4}
	for c := int64(1); c <= contacts; c++ {
		require.Equalf(t, want, per[c], "contact %d:%s", c, contactStory(t, db, c))
		require.Equalf(t, 2, d.count("email", c), "contact %d: emails delivered (limit 2 a day)", c)
		require.Equalf(t, 2, d.count("sms", c), "contact %d: SMS delivered (limit 2 a day)", c)
	}
	stats := statsRows(t, db)
	require.Equal(t, 2*int(contacts), stats["email"])
	require.Equal(t, 2*int(contacts), stats["sms"])
	require.Equal(t, int(contacts), db.Count(t, "message_queue", ""), "Mautic's queue dedup: one pending row per contact")
	checkCounters(t, ds, map[string]int{"email": 2 * int(contacts), "sms": 2 * int(contacts)})
	report(t, measured{Fault: "3 replicas, every webhook posted twice to two replicas", Requests: 2 * webhooks, Accepted: fc["200"],
		Sent: 4 * int(contacts), Deliveries: d.total(), Duplicated: d.total() - 4*int(contacts), Lost: 0,
		Note: fmt.Sprintf("%d dispatches for %d webhooks (%d pairs in flight together); routed by the replicas %v, each once; per contact 2 emails + 2 SMS sent, %d queued: no limit exceeded",
			len(rows), webhooks, pairsAcrossBatches, perReplica, events-4)})
}

// routedIDs counts the "dispatch routed" log lines per dispatch id of one
// process.
func routedIDs(t testing.TB, sc *sidecar) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, rec := range sc.records("dispatch routed") {
		out[fmt.Sprint(rec["dispatch_id"])]++
	}
	return out
}
