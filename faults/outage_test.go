package faults

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestDatabaseOutage: under a steady webhook load, the database (a private
// mariadbd, never the shared test server) is killed for 10 seconds and
// started again on the same data directory. While it is down every call is
// answered 503 database_unavailable at once and nothing of those calls is
// recorded; /readyz says 503; when it is back the sidecar accepts and sends
// again by itself (no restart); every call answered 200 ends sent.
func TestDatabaseOutage(t *testing.T) {
	outage := 10 * time.Second
	if soak() {
		outage = 60 * time.Second
	}
	maria := startMariaDB(t)
	db := testdb.New(t, testdb.WithServer(maria.ServerDSN()))
	ds := newDataset(t, db)
	msg := ds.message("email", "sms", "notification", "hook")
	const rate = 150
	n := int(rate * (outage.Seconds() + 25))
	ds.contacts(1, int64(n), crashReach)
	prov := startProviders(t)
	prov.http.SetFault("", sandbox.Behavior{Delay: 20 * time.Millisecond})
	// Longer than the outage: a batch whose sends were done when the
	// database went away writes its outcome when it is back, within the
	// lease, so nothing is sent twice. (The soak's outage outlasts it.)
	const lease = 15 * time.Second
	sc := startSidecar(t, "outage", "", with(merge(baseEnv(db), prov.env()), "SIDECAR_LEASE="+lease.String(), "SIDECAR_LOG_LEVEL=debug"))

	keyOf := func(i int) string { return "outage-" + strconv.Itoa(i) }
	l := startLoad(loadSpec{N: n, Clients: 8, Rate: rate, For: 5 * time.Minute,
		URL:  func(int) string { return sc.URL() },
		Form: func(i int) url.Values { return ds.form(int64(i+1), msg, ds.eventID, keyOf(i)) }})
	t.Cleanup(func() { l.Stop(); l.Wait() })
	eventually(t, 2*time.Minute, "the load to run with sends under way", func() bool {
		return l.OK() >= 5*rate && prov.delivered() >= 2*rate
	})

	// A call answered between the signal and the server's exit (reaped
	// below) can already see the connection gone: in doubt from killAt.
	killAt := time.Now()
	maria.kill()
	down := time.Now()
	okAtDown := l.OK()
	readyz := map[int]int{}
	for time.Since(down) < outage {
		readyz[getStatus(t, sc.URL()+"/readyz")]++
		time.Sleep(500 * time.Millisecond) // the outage lasts this long whatever happens
	}
	// What the providers had delivered before the database came back: a
	// batch claimed before the kill may have sent then, its outcome unwritten.
	deliveredBefore := prov.deliveries()
	restart := time.Now()
	maria.start()
	up := time.Now()
	// Dispatches leased before the outage and still leased now: their sends
	// may have happened without their outcome being written.
	windowEnd := leasedBefore(t, db, down.Add(lease+time.Second))
	window := map[int64]bool{}
	for id := range windowEnd {
		window[id] = true
	}
	t.Logf("database down %s (restart took %s); %d dispatches were leased when it went down and not written",
		restart.Sub(down).Round(time.Millisecond), up.Sub(restart).Round(time.Millisecond), len(window))

	var firstOK time.Time
	eventually(t, 60*time.Second, "a webhook call made after the database came back to be accepted", func() bool {
		firstOK = l.firstOKSentAfter(up)
		return !firstOK.IsZero()
	})
	okAtUp := l.OK()
	eventually(t, 2*time.Minute, "the load to go on after the outage", func() bool { return l.OK() >= okAtUp+5*rate })
	l.Stop()
	res := l.Wait()
	eventually(t, 3*time.Minute, "every accepted dispatch to reach a terminal state", func() bool { return pending(t, db) == 0 })

	// While the database was down: every call answered at once, 503.
	var during []answer
	var inDoubt []int
	for i, a := range res.Final[:res.Started] {
		switch {
		case !a.Sent.Before(down) && a.Got.Before(restart):
			during = append(during, a)
			require.Equalf(t, "503 database_unavailable", a.key(), "call %d made while the database was down", i)
			require.Lessf(t, a.Got.Sub(a.Sent), 5*time.Second, "call %d answered at once while the database was down", i)
			require.Zerof(t, db.Count(t, "sidecar_dispatches", "idempotency_key = ?", keyOf(i)),
				"call %d refused with 503 is not half-recorded", i)
		case a.Sent.Before(down) && a.Got.After(killAt) && a.Status != http.StatusOK:
			inDoubt = append(inDoubt, i)
		}
	}
	require.NotEmpty(t, during, "calls were made during the outage")
	require.Zerof(t, readyz[http.StatusOK], "/readyz never answered 200 while the database was down: %v", readyz)
	// A call whose COMMIT reached the server just before it died is
	// recorded although the sidecar, which lost the acknowledgement,
	// answered 503: no client of a database can tell. Such a dispatch must
	// be whole (routed and sent once, like any other), and only a call in
	// flight at the moment of the kill may be one.
	recorded := map[int64]bool{}
	for _, i := range inDoubt {
		var ids []int64
		require.NoError(t, db.Select(&ids, "SELECT id FROM "+db.T("sidecar_dispatches")+" WHERE idempotency_key = ?", keyOf(i)))
		for _, id := range ids {
			recorded[id] = true
		}
	}
	all := res.accepted()
	for id := range recorded {
		all[id] = true
	}

	// When the outage outlasts the lease (the soak) a worker can take such a
	// dispatch over as soon as the database is back, before the read above:
	// it is one of the window too. It is known by what it left: a delivery
	// before the database came back, and an outcome written after (an
	// outcome written before the kill is never routed again). After means
	// after the restart began: the sidecar reconnects while the server
	// starts, and a batch's updated_at is when its routing began, so such
	// an outcome can bear a time before start() returned.
	if outage > lease {
		var late []struct {
			ID      int64  `db:"id"`
			Contact int64  `db:"contact_id"`
			Channel string `db:"channel"`
		}
		require.NoError(t, db.Select(&late, "SELECT id, contact_id, channel FROM "+db.T("sidecar_dispatches")+
			" WHERE state = 'sent' AND updated_at >= ?", restart.UTC()))
		for _, d := range late {
			if deliveredBefore.count(d.Channel, d.Contact) > 0 && !window[d.ID] {
				window[d.ID] = true
				t.Logf("dispatch %d: delivered before the database came back, its outcome written after: taken over after the outage", d.ID)
			}
		}
	}
	c := checkDelivered(t, ds, prov, all, window)
	if len(windowEnd) > 0 {
		first, last := up.Add(time.Hour), up.Add(-time.Hour)
		for _, end := range windowEnd {
			if end.Before(first) {
				first = end
			}
			if end.After(last) {
				last = end
			}
		}
		t.Logf("the leases taken before the outage ended %s to %s after the database was back",
			first.Sub(up).Round(time.Millisecond), last.Sub(up).Round(time.Millisecond))
	}
	t.Logf("log: %s", counts(sc.levelCounts()))
	// A batch whose sends were made before the outage writes its outcome
	// once the database is back, if its lease still has the fence's margin
	// (a lease/8) left then, plus a little time to reconnect and write: such
	// a dispatch is never sent again. Only one whose lease ended sooner (a
	// batch claimed a while before the kill, or an outage longer than the
	// lease, as in the soak) may be taken over and sent again.
	writable := up.Add(lease/8 + 2*time.Second)
	for _, id := range c.twice {
		end := windowEnd[id]
		require.Truef(t, end.Before(writable),
			"dispatch %d was sent again although its lease ended %s after the database was back, time enough to write its outcome; its log:\n%s",
			id, end.Sub(up).Round(time.Millisecond), sc.grep(fmt.Sprintf(`"dispatch_id":%d,`, id)))
	}
	fc := res.finalCounts()
	t.Logf("answers: %s; in flight at the kill and refused: %d (of which recorded, and sent: %d); /readyz during the outage: %v",
		counts(fc), len(inDoubt), len(recorded), readyz)
	report(t, measured{Fault: fmt.Sprintf("database killed for %s under load", seconds(outage)), Requests: res.Started,
		Accepted: fc["200"], Sent: c.sent, Deliveries: c.deliveries, Duplicated: c.duplicated, Lost: c.lost,
		Note: fmt.Sprintf("%d calls during the outage, all 503 database_unavailable (max %s); %d accepted before it; first 200 %s after the restart; %d dispatches leased when it went down; %d calls in flight at the kill refused, of which %d were recorded (and sent once)",
			len(during), maxLatency(during), okAtDown, firstOK.Sub(up).Round(10*time.Millisecond), len(window), len(inDoubt), len(recorded))})
	require.True(t, sc.alive(), "the sidecar survived the outage")
}

// leasedBefore returns the dispatches still leased whose lease ends before
// until: claimed before the outage.
func leasedBefore(t testing.TB, db *testdb.DB, until time.Time) map[int64]time.Time {
	t.Helper()
	var rows []struct {
		ID    int64     `db:"id"`
		RunAt time.Time `db:"run_at"`
	}
	if err := db.Select(&rows, "SELECT id, run_at FROM "+db.T("sidecar_dispatches")+
		" WHERE state = 'accepted' AND lease_owner IS NOT NULL AND run_at < ?", until.UTC()); err != nil {
		t.Fatalf("read leases: %v", err)
	}
	out := map[int64]time.Time{}
	for _, r := range rows {
		out[r.ID] = r.RunAt
	}
	return out
}

// firstOKSentAfter returns when the first request made after at was
// answered 200 (zero: none yet).
func (l *load) firstOKSentAfter(at time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.attempts {
		if a.Status == http.StatusOK && a.Sent.After(at) && (first.IsZero() || a.Got.Before(first)) {
			first = a.Got
		}
	}
	return first
}

func getStatus(t testing.TB, u string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func maxLatency(as []answer) string {
	var m time.Duration
	for _, a := range as {
		m = max(m, a.Got.Sub(a.Sent))
	}
	return strings.TrimSpace(m.Round(time.Millisecond).String())
}
