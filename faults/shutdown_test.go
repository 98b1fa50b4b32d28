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

// TestGracefulShutdownUnderLoad: SIGTERM while webhook calls come in and
// sends are in flight. The process stops accepting, finishes its batches
// and exits 0 within SIDECAR_SHUTDOWN_TIMEOUT; a new process on the same
// address takes over. Nothing is lost and, unlike a crash, nothing is sent
// twice. Then the same with a provider that hangs: the stop still keeps
// its bound, the hung sends count as transient tries, and the next process
// sends them.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	n := pick(3000, 30000)
	db := testdb.New(t)
	ds := newDataset(t, db)
	msg := ds.message("email", "sms", "notification", "hook")
	ds.contacts(1, int64(n)+100, crashReach)
	prov := startProviders(t)
	const shutdownTimeout = 10 * time.Second
	env := with(merge(baseEnv(db), prov.env()), "SIDECAR_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(), "SIDECAR_LEASE=10s")

	t.Run("under load", func(t *testing.T) {
		prov.http.SetFault("", sandbox.Behavior{Delay: 50 * time.Millisecond})
		defer prov.http.Clear()
		addr := freeAddr(t)
		sc := startSidecar(t, "graceful-0", addr, env)
		l := startLoad(loadSpec{N: n, Clients: 16, Rate: 400, For: 5 * time.Minute, Retry: true,
			URL:  func(int) string { return "http://" + addr },
			Form: func(i int) url.Values { return ds.form(int64(i+1), msg, ds.eventID, "term-"+strconv.Itoa(i)) }})
		t.Cleanup(func() { l.Stop(); l.Wait() })
		stops := pick(1, 5)
		var took []time.Duration
		for k := 0; k < stops; k++ {
			mark := (k + 1) * n / (stops + 1)
			before := prov.delivered()
			eventually(t, 3*time.Minute, "the load to reach its stop point with sends under way", func() bool {
				return l.OK() >= mark && prov.delivered() > before+50
			})
			require.Lessf(t, l.Started(), n, "SIGTERM comes while the load still runs")
			code, d := sc.term(shutdownTimeout + 5*time.Second)
			require.Equalf(t, 0, code, "exit code after SIGTERM:\n%s", sc.tail(20))
			require.LessOrEqualf(t, d, shutdownTimeout+time.Second, "stopped within SIDECAR_SHUTDOWN_TIMEOUT")
			require.Emptyf(t, leasedIDs(t, db), "the stopped process left no leased dispatch behind")
			took = append(took, d)
			sc = startSidecar(t, fmt.Sprintf("graceful-%d", k+1), addr, env)
		}
		res := l.Wait()
		fc := res.finalCounts()
		require.Equalf(t, n, fc["200"], "every request ends answered 200: %s", counts(fc))
		eventually(t, 3*time.Minute, "every dispatch to reach a terminal state", func() bool { return pending(t, db) == 0 })
		c := checkDelivered(t, ds, prov, res.accepted(), nil)
		require.Zero(t, c.duplicated, "a graceful stop sends nothing twice")
		t.Logf("attempts: %s", counts(res.attemptCounts()))
		report(t, measured{Fault: fmt.Sprintf("SIGTERM ×%d under load, restart", stops), Requests: n, Accepted: fc["200"], Sent: c.sent,
			Deliveries: c.deliveries, Duplicated: c.duplicated, Lost: c.lost,
			Note: fmt.Sprintf("exit 0 after %s; calls during the stop: %s", seconds(maxDur(took)), refusals(res))})
	})

	t.Run("with a hung provider", func(t *testing.T) {
		const short = 3 * time.Second
		env := with(env, "SIDECAR_SHUTDOWN_TIMEOUT="+short.String(), "SIDECAR_SEND_TIMEOUT=30s", "SIDECAR_LEASE=60s")
		addr := freeAddr(t)
		sc := startSidecar(t, "hung-0", addr, env)
		prov.http.SetFault(sandbox.Twilio, sandbox.Behavior{Delay: time.Hour}) // answers when the client gives up
		var ids []int64
		for c := int64(n) + 1; c <= int64(n)+100 && len(ids) < 5; c++ {
			if crashReach(c).mobile { // contacts reachable by SMS only
				ids = append(ids, post(t, sc.URL(), ds.form(c, msg, ds.eventID, "")))
			}
		}
		eventually(t, 30*time.Second, "the SMS sends to be under way", func() bool {
			leased := leasedIDs(t, db)
			for _, id := range ids {
				if !leased[id] {
					return false
				}
			}
			return true
		})
		code, took := sc.term(short + 5*time.Second)
		require.Equal(t, 0, code)
		require.LessOrEqualf(t, took, short+time.Second, "the stop keeps its bound with sends hung")
		for _, id := range ids {
			r := dispatches(t, db)[id]
			require.Equalf(t, "accepted", r.State, "dispatch %d waits for the next process", id)
			require.Containsf(t, r.Trace, "provider_transient", "the cancelled send is a transient try")
		}
		require.Empty(t, leasedIDs(t, db), "their leases were released")
		prov.http.Clear()
		sc = startSidecar(t, "hung-1", addr, env)
		eventually(t, 60*time.Second, "the next process to send them", func() bool { return allTerminal(t, db, set(ids)) })
		d := prov.deliveries()
		rows := dispatches(t, db)
		for _, id := range ids {
			r := rows[id]
			require.Equal(t, "sent", r.State)
			require.Equalf(t, 1, d.count("sms", r.ContactID), "contact %d: one SMS delivered (the hung call delivered nothing)", r.ContactID)
		}
		report(t, measured{Fault: "SIGTERM with the SMS provider hung", Requests: len(ids), Accepted: len(ids), Sent: len(ids),
			Deliveries: len(ids), Duplicated: 0, Lost: 0,
			Note: fmt.Sprintf("exit 0 after %s (SIDECAR_SHUTDOWN_TIMEOUT=%s); the hung sends were recorded as a transient try and sent by the next process",
				seconds(took), short)})
	})
}

// refusals summarises the answers that were not 200 (the client repeated
// those calls).
func refusals(r loadResult) string {
	m := r.attemptCounts()
	delete(m, "200")
	if len(m) == 0 {
		return "none refused"
	}
	return counts(m)
}
