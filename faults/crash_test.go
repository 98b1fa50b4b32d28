package faults

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// crashReach spreads the contacts over the message's four channels: each
// contact has exactly one way to be reached, so a delivery names its
// dispatch (one dispatch per contact).
func crashReach(id int64) reach {
	switch id % 4 {
	case 0:
		return reach{email: true}
	case 1:
		return reach{mobile: true}
	case 2:
		return reach{push: true}
	}
	return reach{} // the custom "hook" channel needs no address
}

// TestCrashUnderLoad: SIGKILL the sidecar while 5,000 webhook calls come in
// and sends are under way, then start it again on the same address. The
// load client, like a careful Mautic, repeats a call that got no answer
// with the same idempotency key. Every call answered 200 ends sent; every
// provider delivery beyond the first for a dispatch is a dispatch that the
// killed process had leased (claimed, not yet written): the crash window.
func TestCrashUnderLoad(t *testing.T) {
	n := pick(5000, 50000)
	db := testdb.New(t)
	ds := newDataset(t, db)
	msg := ds.message("email", "sms", "notification", "hook")
	ds.contacts(1, int64(n), crashReach)
	prov := startProviders(t)
	// A provider's latency, so that sends are in flight when the kill comes.
	prov.http.SetFault("", sandbox.Behavior{Delay: 20 * time.Millisecond})
	const lease = 5 * time.Second
	env := with(merge(baseEnv(db), prov.env()), "SIDECAR_LEASE="+lease.String())
	addr := freeAddr(t)
	sc := startSidecar(t, "crash-0", addr, env)

	l := startLoad(loadSpec{N: n, Clients: 16, Rate: 500, For: 10 * time.Minute, Retry: true,
		URL: func(int) string { return "http://" + addr },
		Form: func(i int) url.Values {
			c := int64(i + 1)
			return ds.form(c, msg, ds.eventID, "crash-"+strconv.Itoa(i))
		}})
	t.Cleanup(func() { l.Stop(); l.Wait() })

	// CI: one kill at half the load; soak: one every tenth.
	var marks []float64
	if soak() {
		marks = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
	} else {
		marks = []float64{0.5}
	}
	window := map[int64]bool{} // dispatches leased by a killed process
	var resume []time.Duration
	for k, frac := range marks {
		before := prov.delivered()
		eventually(t, 5*time.Minute, "the load to reach its kill point with sends under way", func() bool {
			return l.OK() >= int(frac*float64(n)) && prov.delivered() > before+50
		})
		require.Truef(t, l.Started() < n, "the kill comes while the load still runs (%d of %d requests started)", l.Started(), n)
		killedAt := time.Now()
		sc.kill()
		leased := leasedIDs(t, db)
		for id := range leased {
			window[id] = true
		}
		t.Logf("kill %d at %d accepted requests: %d dispatches were leased by the killed process", k+1, l.OK(), len(leased))
		sc = startSidecar(t, fmt.Sprintf("crash-%d", k+1), addr, env)
		eventually(t, 60*time.Second, "the killed process's leased dispatches to be resumed", func() bool {
			return allTerminal(t, db, leased)
		})
		resume = append(resume, time.Since(killedAt))
	}
	res := l.Wait()
	require.Truef(t, res.Started == n, "every request was made: %d of %d", res.Started, n)
	fc := res.finalCounts()
	require.Truef(t, fc["200"] == n, "every request ends answered 200 (retried after the crash): %s; first error %q", counts(fc), res.firstError())
	eventually(t, 3*time.Minute, "every dispatch to reach a terminal state", func() bool { return pending(t, db) == 0 })

	c := checkDelivered(t, ds, prov, res.accepted(), window)
	require.Truef(t, len(res.accepted()) == n, "one dispatch per request: %d distinct ids for %d requests", len(res.accepted()), n)
	for _, r := range resume {
		require.Truef(t, r < 60*time.Second, "work of a dead process is resumed within 60 seconds (took %s)", r)
	}
	t.Logf("attempts: %s", counts(res.attemptCounts()))
	report(t, measured{Fault: fmt.Sprintf("crash: SIGKILL ×%d during the load, restart", len(marks)), Requests: n, Accepted: fc["200"],
		Sent: c.sent, Deliveries: c.deliveries, Duplicated: c.duplicated, Lost: c.lost,
		Note: fmt.Sprintf("%d dispatches leased at the kill(s) (the window); %d repeated OneSignal calls absorbed by idempotency_key; resumed after %s",
			len(window), c.repeats, seconds(maxDur(resume)))})
}

// delivered is what checkDelivered counted.
type delivered struct {
	sent, deliveries, duplicated, lost, repeats int
	// twice lists the dispatches delivered more than once.
	twice []int64
}

// checkDelivered checks that the recorded dispatches are exactly the
// accepted ones, and every one of them: it is sent, the provider
// of its channel delivered it at least once, more than once only when it is
// in window (leased by a process that died), repeats carry the dispatch's
// own key, and the stats rows Mautic sees match the sent dispatches
// exactly (nothing written twice).
func checkDelivered(t testing.TB, ds *dataset, prov *providers, accepted map[int64]bool, window map[int64]bool) delivered {
	t.Helper()
	db := ds.db
	rows := dispatches(t, db)
	for id := range rows {
		require.Truef(t, accepted[id], "dispatch %d is recorded but its call was not accepted", id)
	}
	d := prov.deliveries()
	var c delivered
	c.repeats = d.repeats
	sentBy := map[string]int{}
	var outside []int64
	for id := range accepted {
		r, ok := rows[id]
		if !ok || r.State != "sent" {
			c.lost++
			if c.lost <= 5 {
				t.Errorf("accepted dispatch %d is %q, not sent: %+v", id, r.State, r)
			}
			continue
		}
		c.sent++
		sentBy[r.Channel.String]++
		got := d.count(r.Channel.String, r.ContactID)
		switch {
		case got == 0:
			c.lost++
			t.Errorf("dispatch %d is sent on %s but the provider never delivered it", id, r.Channel.String)
		case got > 1:
			c.duplicated += got - 1
			c.twice = append(c.twice, id)
			if !window[id] {
				outside = append(outside, id)
			}
			if r.Channel.String == "email" {
				for _, k := range d.keys["email"][r.ContactID] {
					require.Truef(t, k == fmt.Sprintf("sidecar-d%d-email", id), "a repeated email carries the dispatch's Message-ID: %q", k)
				}
			}
		}
	}
	for _, m := range d.by {
		for _, n := range m {
			c.deliveries += n
		}
	}
	require.Truef(t, len(outside) == 0, "%d dispatches delivered twice outside the crash window (not leased by a dead process): %v", len(outside), outside)
	require.Truef(t, c.deliveries == c.sent+c.duplicated, "deliveries %d = sent %d + duplicates %d (nothing delivered that was not accepted)",
		c.deliveries, c.sent, c.duplicated)
	stats := statsRows(t, db)
	for ch, n := range sentBy {
		require.Truef(t, stats[ch] == n, "%s: %d stats rows for %d sent dispatches (a stat written twice or lost)", ch, stats[ch], n)
	}
	checkCounters(t, ds, sentBy)
	return c
}

// checkCounters waits for Mautic's content counters (emails.sent_count and
// the like, applied shortly after the sends) to equal the sends.
func checkCounters(t testing.TB, ds *dataset, sentBy map[string]int) {
	t.Helper()
	tables := map[string]string{"email": "emails", "sms": "sms_messages", "notification": "push_notifications", "tweet": "tweets"}
	counter := func(ch string) int {
		var n int
		if err := ds.db.Get(&n, "SELECT sent_count FROM "+ds.db.T(tables[ch])+" WHERE id = ?", ds.content[ch]); err != nil {
			t.Fatalf("read %s counter: %v", ch, err)
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		diff := ""
		for ch := range tables {
			if got := counter(ch); got != sentBy[ch] {
				diff += fmt.Sprintf(" %s.sent_count %d for %d sends;", tables[ch], got, sentBy[ch])
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the content counters do not match the sends after 30s:%s", diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// allTerminal reports whether every dispatch of ids left state accepted.
func allTerminal(t testing.TB, db *testdb.DB, ids map[int64]bool) bool {
	if len(ids) == 0 {
		return true
	}
	return db.Count(t, "sidecar_dispatches", "state = 'accepted' AND id IN ("+idList(ids)+")") == 0
}

func idList(ids map[int64]bool) string {
	if len(ids) == 0 {
		return "0"
	}
	b := make([]byte, 0, len(ids)*6)
	for id := range ids {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(b)
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
