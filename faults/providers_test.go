package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/channels/webhook"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// outcome is how a dispatch on a faulty primary channel must end.
type outcome int

const (
	viaFallbackTransient outcome = iota // RETRY_MAX transient tries on the primary, then the fallback channel
	viaFallbackAtOnce                   // one transient try asking to wait over the cap, then the fallback
	viaFallbackPermanent                // one permanent refusal, then the fallback
	onPrimary                           // the primary channel took it
)

// providerFault is one fault applied to every provider at once.
type providerFault struct {
	name string
	http sandbox.Behavior
	smtp smtpFault
	// minGap is the least time between two calls of one dispatch to the
	// provider (backoff, or the provider's Retry-After).
	minGap time.Duration
	expect func(channel string) outcome
}

// The retry and breaker settings of the test: 3 calls per channel, backoff
// from 200 ms (so at least 100 ms with jitter), 1 s per call, a breaker
// that opens after 3 transient failures in a row for 2 s.
const (
	retryBase      = 200 * time.Millisecond
	breakerTimeout = 2 * time.Second
	sendTimeout    = time.Second
)

var primaries = []string{"email", "sms", "notification", "tweet", "hook"}

func transientAll(string) outcome { return viaFallbackTransient }

// TestProviderFaults: every provider (SMTP, Twilio, OneSignal, X and a
// webhook channel) fails the same way at once, for each kind of failure;
// each marketing message has the faulty channel first and a healthy webhook
// channel ("fallback") second. Transient failures are retried with backoff
// (Retry-After honoured), open the breaker, then fall through; permanent
// ones fall through at once; nothing is delivered twice. Then the fault is
// cleared: the breakers close by themselves and the primary channels send
// again.
func TestProviderFaults(t *testing.T) {
	faults := []providerFault{
		{name: "500", http: sandbox.Behavior{Status: 500}, smtp: smtpTempFail, minGap: retryBase / 2, expect: transientAll},
		{name: "429 Retry-After 1s", http: sandbox.Behavior{Status: 429, RetryAfter: "1"}, smtp: smtpBusy, minGap: time.Second,
			expect: transientAll},
		{name: "429 Retry-After 120s (over the 1 min cap)", http: sandbox.Behavior{Status: 429, RetryAfter: "120"}, smtp: smtpPass,
			expect: func(ch string) outcome {
				if ch == "email" { // SMTP has no Retry-After: not faulted here
					return onPrimary
				}
				return viaFallbackAtOnce
			}},
		{name: "timeout", http: sandbox.Behavior{Delay: 3 * sendTimeout}, smtp: smtpHang, minGap: retryBase / 2, expect: transientAll},
		{name: "connection reset", http: sandbox.Behavior{Reset: true}, smtp: smtpReset, minGap: retryBase / 2, expect: transientAll},
		{name: "garbage body (HTML with 2xx)", http: sandbox.Behavior{Garbage: true}, smtp: smtpGarbage, minGap: retryBase / 2,
			expect: func(ch string) outcome {
				if ch == "hook" { // a custom webhook's 2xx is an acceptance, whatever its body
					return onPrimary
				}
				return viaFallbackTransient
			}},
		{name: "truncated body", http: sandbox.Behavior{Truncate: true}, smtp: smtpTruncate, minGap: retryBase / 2,
			expect: func(ch string) outcome {
				if ch == "hook" {
					return onPrimary
				}
				return viaFallbackTransient
			}},
		{name: "4xx (permanent)", http: sandbox.Behavior{Status: 400}, smtp: smtpPermFail,
			expect: func(string) outcome { return viaFallbackPermanent }},
	}
	const k = 5 // dispatches per provider and fault
	db := testdb.New(t)
	ds := newDataset(t, db)
	msgs := map[string]int64{}
	for _, p := range primaries {
		msgs[p] = ds.message(p, "fallback")
	}
	ds.contacts(1, 1000, func(int64) reach { return reachAll })
	prov := startProviders(t)
	sc := startSidecar(t, "providers", "", with(merge(baseEnv(db), prov.env()),
		"SIDECAR_RETRY_MAX=3", "SIDECAR_RETRY_BASE="+retryBase.String(), "SIDECAR_SEND_TIMEOUT="+sendTimeout.String(),
		"SIDECAR_BREAKER_FAILURES=3", "SIDECAR_BREAKER_TIMEOUT="+breakerTimeout.String(), "SIDECAR_LEASE=10s", "SIDECAR_WORKERS=4"))
	f := &faultRun{t: t, ds: ds, prov: prov, sc: sc, msgs: msgs, next: 1}

	t.Run("backoff: 500 twice, then success", func(t *testing.T) {
		f.t = t
		f.backoff("500", sandbox.Behavior{Status: 500}, func(try int) (time.Duration, time.Duration) {
			d := retryBase << (try - 1) // exponential, jittered in [d/2, d]
			return d / 2, d
		})
	})
	t.Run("backoff: 429 with Retry-After 1s twice, then success", func(t *testing.T) {
		f.t = t
		f.backoff("429 Retry-After 1s", sandbox.Behavior{Status: 429, RetryAfter: "1"}, func(int) (time.Duration, time.Duration) {
			return time.Second, time.Second // the provider's wait wins over a shorter backoff
		})
	})
	for _, fault := range faults {
		ok := t.Run(fault.name, func(t *testing.T) {
			f.t = t
			f.fault(fault, k)
			f.recover(fault, k)
		})
		if !ok {
			t.Fatalf("stopped after %q: the breakers may still be open, so later phases would not mean anything", fault.name)
		}
	}
}

// faultRun is the state shared by the fault phases.
type faultRun struct {
	t    *testing.T
	ds   *dataset
	prov *providers
	sc   *sidecar
	msgs map[string]int64
	next int64 // next unused contact
}

// contacts hands out n fresh contacts.
func (f *faultRun) contacts(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = f.next
		f.next++
	}
	return out
}

// submit posts one webhook call per contact for message msg and returns the
// dispatch ids.
func (f *faultRun) submit(msg int64, contacts []int64) []int64 {
	ids := make([]int64, len(contacts))
	for i, c := range contacts {
		ids[i] = post(f.t, f.sc.URL(), f.ds.form(c, msg, f.ds.eventID, fmt.Sprintf("pf-%d", c)))
	}
	return ids
}

// fault applies the fault to every provider, sends k dispatches per
// primary channel and checks how each ended.
func (f *faultRun) fault(pf providerFault, k int) {
	t := f.t
	f.prov.http.SetFault("", pf.http)
	f.prov.front.set(pf.smtp)
	opened := map[string]int{}
	for _, p := range primaries {
		opened[p] = f.sc.logCount("circuit breaker opened", map[string]string{"channel": p})
	}
	calls := f.callsByContact()
	fallbackBefore := f.prov.deliveries()
	start := time.Now()
	contacts := map[string][]int64{}
	ids := map[string][]int64{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range primaries {
		cs := f.contacts(k)
		contacts[p] = cs
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := f.submit(f.msgs[p], cs)
			mu.Lock()
			ids[p] = got
			mu.Unlock()
		}()
	}
	wg.Wait()
	eventually(t, 60*time.Second, "every dispatch of the fault phase to end", func() bool { return pending(t, f.ds.db) == 0 })
	took := time.Since(start)
	rows := dispatches(t, f.ds.db)
	after := f.callsByContact()
	d := f.prov.deliveries()
	var notes []string
	var minGapSeen time.Duration = -1
	providerCalls := map[string]int{}
	sent, fallbackN := 0, 0
	for _, p := range primaries {
		want := pf.expect(p)
		for i, id := range ids[p] {
			c := contacts[p][i]
			r := rows[id]
			require.Equalf(t, "sent", r.State, "%s contact %d: %s", p, c, r.Trace)
			sent++
			got := traceOf(t, r.Trace)
			if want == viaFallbackAtOnce {
				// Tries the open breaker refused come first (retried: the
				// breaker asks for less than the cap); the one provider
				// call asking for 120 s exhausts the channel at once.
				refused := len(got) - 2
				for _, e := range traceEntries(t, r.Trace)[:max(refused, 0)] {
					require.Containsf(t, e.Detail, "circuit breaker", "%s contact %d: only refusals of the breaker are retried: %s", p, c, r.Trace)
				}
				got = got[max(refused, 0):]
			}
			require.Equalf(t, expectedTrace(p, want), got, "%s contact %d", p, c)
			if want == onPrimary {
				require.Equal(t, p, r.Channel.String)
			} else {
				require.Equalf(t, "fallback", r.Channel.String, "%s contact %d falls through to the next channel", p, c)
				fallbackN++
				require.Equalf(t, 1, d.count("fallback", c)-fallbackBefore.count("fallback", c), "%s contact %d: one fallback delivery", p, c)
				require.Zerof(t, d.count(p, c), "%s contact %d: nothing delivered by the faulty provider", p, c)
			}
			if p == "email" {
				continue // SMTP connections do not name their recipient
			}
			n := len(after[p][c]) - len(calls[p][c])
			providerCalls[p] += n
			switch want {
			case viaFallbackTransient:
				// Tries refused by the open breaker never reach the provider.
				require.LessOrEqualf(t, n, 3, "%s contact %d: at most RETRY_MAX provider calls", p, c)
			case viaFallbackAtOnce:
				require.LessOrEqualf(t, n, 1, "%s contact %d: at most one provider call", p, c)
			default:
				require.Equalf(t, 1, n, "%s contact %d: exactly one provider call", p, c)
			}
			times := after[p][c][len(calls[p][c]):]
			for j := 1; j < len(times); j++ {
				gap := times[j].Sub(times[j-1])
				require.GreaterOrEqualf(t, gap, pf.minGap-50*time.Millisecond, "%s contact %d: retry %d came %s after the previous call", p, c, j, gap)
				if minGapSeen < 0 || gap < minGapSeen {
					minGapSeen = gap
				}
			}
		}
		openedNow := f.sc.logCount("circuit breaker opened", map[string]string{"channel": p}) - opened[p]
		if openedNow > 0 {
			notes = append(notes, p)
		}
		switch pf.expect(p) {
		case viaFallbackTransient:
			require.Positivef(t, openedNow, "%s: %d transient failures in a row open the breaker", p, k)
			if p != "email" {
				require.Lessf(t, providerCalls[p], 3*k, "%s: the open breaker spared the provider some of the %d tries", p, 3*k)
			}
		case viaFallbackPermanent:
			require.Zerof(t, openedNow, "%s: permanent refusals do not open the breaker", p)
		}
	}
	var all []int64
	for _, cs := range contacts {
		all = append(all, cs...)
	}
	require.Zero(t, f.ds.db.Count(t, "lead_donotcontact", "lead_id IN ("+idList(set(all))+")"),
		"a failure that is not about the address adds no DNC")
	failedSMS := f.ds.db.Count(t, "sms_message_stats", "is_failed = 1 AND lead_id IN ("+idList(set(contacts["sms"]))+")")
	if pf.expect("sms") != onPrimary {
		require.Equalf(t, k, failedSMS, "one failed sms_message_stats row per SMS given up")
	}
	gap := "-"
	if minGapSeen >= 0 {
		gap = minGapSeen.Round(time.Millisecond).String()
	}
	primaryCalls := 0
	for p, byContact := range after {
		for c, ts := range byContact {
			primaryCalls += len(ts) - len(calls[p][c])
		}
	}
	report(t, measured{Fault: "provider " + pf.name + " (all 5 providers)", Requests: len(primaries) * k, Accepted: len(primaries) * k,
		Sent: sent, Deliveries: d.total() - fallbackBefore.total(), Duplicated: 0, Lost: 0,
		Note: fmt.Sprintf("%d fell through to the next channel; %d HTTP provider calls for %d dispatches; shortest retry gap %s; breaker opened on %s; all ended in %s",
			fallbackN, primaryCalls, (len(primaries)-1)*k, gap, orNone(notes), seconds(took))})
}

// backoff makes one address per HTTP provider fail twice with b, then
// succeed: three calls, the retries spaced by the delay the trace names,
// which lies in bounds(try); the third call delivers; two failures in a row
// leave the breaker closed.
func (f *faultRun) backoff(name string, b sandbox.Behavior, bounds func(try int) (lo, hi time.Duration)) {
	t := f.t
	b.Times = 2
	contacts := map[string]int64{}
	for ch, prov := range httpProvider {
		c := f.contacts(1)[0]
		contacts[ch] = c
		f.prov.http.SetAddress(prov, addressFor(ch, c), b)
	}
	before := f.callsByContact()
	delivered := f.prov.deliveries()
	ids := map[string]int64{}
	for ch, c := range contacts {
		ids[ch] = f.submit(f.msgs[ch], []int64{c})[0]
	}
	eventually(t, 30*time.Second, "the retried dispatches to end", func() bool { return pending(t, f.ds.db) == 0 })
	rows := dispatches(t, f.ds.db)
	after := f.callsByContact()
	d := f.prov.deliveries()
	var gaps []string
	for ch, c := range contacts {
		r := rows[ids[ch]]
		require.Equalf(t, []string{ch + ":failed_transient:provider_transient", ch + ":failed_transient:provider_transient", ch + ":sent:"},
			traceOf(t, r.Trace), "%s: retried on the same channel until it worked", ch)
		times := after[ch][c][len(before[ch][c]):]
		require.Lenf(t, times, 3, "%s: three provider calls", ch)
		for try, e := range traceEntries(t, r.Trace)[:2] {
			m := nextIn.FindStringSubmatch(e.Detail)
			require.NotNilf(t, m, "%s: the trace names the delay: %q", ch, e.Detail)
			delay, err := time.ParseDuration(m[1])
			require.NoError(t, err)
			lo, hi := bounds(try + 1)
			require.Truef(t, delay >= lo && delay <= hi, "%s: retry %d after %s, want %s to %s", ch, try+1, delay, lo, hi)
			gap := times[try+1].Sub(times[try])
			require.GreaterOrEqualf(t, gap, delay-50*time.Millisecond, "%s: retry %d came %s after the previous call, planned %s", ch, try+1, gap, delay)
			gaps = append(gaps, gap.Round(time.Millisecond).String())
		}
		require.Equalf(t, 1, d.count(ch, c)-delivered.count(ch, c), "%s: delivered once", ch)
		require.Equalf(t, 0.0, f.sc.metric(t, `sidecar_sender_breaker_state{channel="`+ch+`"}`), "%s: two failures leave the breaker closed", ch)
	}
	sort.Strings(gaps)
	report(t, measured{Fault: "provider " + name + " twice for one address, then success (4 HTTP providers)", Requests: len(contacts),
		Accepted: len(contacts), Sent: len(contacts), Deliveries: d.total() - delivered.total(),
		Note: "3 calls each, retries spaced " + strings.Join(gaps, ", ") + "; breakers stayed closed"})
}

var nextIn = regexp.MustCompile(`next in ([0-9.]+[mµn]?s)`)

// addressFor is the address the sandbox knows contact c by on channel ch.
func addressFor(ch string, c int64) string {
	switch ch {
	case "sms":
		return mobileOf(c)
	case "notification":
		return playerOf(c)
	case "tweet":
		return handleOf(c)
	}
	return strconv.FormatInt(c, 10)
}

// recover clears the fault: the breakers close by themselves (a probe
// dispatch per channel ends sent on it) and then k dispatches per channel
// are each delivered once by their own provider.
func (f *faultRun) recover(pf providerFault, k int) {
	t := f.t
	f.prov.http.Clear()
	f.prov.front.set(smtpPass)
	start := time.Now()
	for _, p := range primaries {
		probe := f.submit(f.msgs[p], f.contacts(1))[0]
		eventually(t, 30*time.Second, p+": the probe dispatch to end", func() bool { return pending(t, f.ds.db) == 0 })
		if r := dispatches(t, f.ds.db)[probe]; r.Channel.String != p {
			// Refused by the open breaker until it exhausted its tries: the
			// next one finds the breaker half-open and probes.
			probe = f.submit(f.msgs[p], f.contacts(1))[0]
			eventually(t, 30*time.Second, p+": the second probe to end", func() bool { return pending(t, f.ds.db) == 0 })
			r = dispatches(t, f.ds.db)[probe]
			require.Equalf(t, p, r.Channel.String, "%s: the breaker closes once the provider is back: %s", p, r.Trace)
		}
		require.Equalf(t, 0.0, f.sc.metric(t, `sidecar_sender_breaker_state{channel="`+p+`"}`), "%s: breaker closed", p)
	}
	closedAfter := time.Since(start)
	before := f.prov.deliveries()
	contacts := map[string][]int64{}
	for _, p := range primaries {
		contacts[p] = f.contacts(k)
		f.submit(f.msgs[p], contacts[p])
	}
	eventually(t, 60*time.Second, "every dispatch after the fault to end", func() bool { return pending(t, f.ds.db) == 0 })
	d := f.prov.deliveries()
	for _, p := range primaries {
		for _, c := range contacts[p] {
			require.Equalf(t, 1, d.count(p, c)-before.count(p, c), "%s contact %d: delivered once by its own provider after the fault", p, c)
		}
	}
	t.Logf("%s: breakers closed %s after the fault was cleared", pf.name, closedAfter.Round(10*time.Millisecond))
}

// callsByContact returns, per HTTP provider channel and contact, the times
// of the calls received (answered or not), read from the request bodies: a
// provider-wide fault answers before looking at them.
func (f *faultRun) callsByContact() map[string]map[int64][]time.Time {
	out := map[string]map[int64][]time.Time{}
	for ch, prov := range httpProvider {
		out[ch] = map[int64][]time.Time{}
		for _, r := range f.prov.http.Requests(prov) {
			if prov == sandbox.Webhook && !strings.HasSuffix(r.Path, "/"+ch) {
				continue
			}
			if c := requestContact(ch, r); c > 0 {
				out[ch][c] = append(out[ch][c], r.At)
			}
		}
		for c := range out[ch] {
			sort.Slice(out[ch][c], func(i, j int) bool { return out[ch][c][i].Before(out[ch][c][j]) })
		}
	}
	return out
}

var mention = regexp.MustCompile(`@(h\d+)`)

// requestContact finds the contact a provider request is for.
func requestContact(ch string, r sandbox.Request) int64 {
	switch ch {
	case "sms":
		return contactOf(ch, r.Form().Get("To"))
	case "notification":
		var b struct {
			IDs []string `json:"include_player_ids"`
		}
		if json.Unmarshal(r.Body, &b) == nil && len(b.IDs) > 0 {
			return contactOf(ch, b.IDs[0])
		}
	case "tweet":
		if m := mention.FindSubmatch(r.Body); m != nil {
			return contactOf(ch, string(m[1]))
		}
	default:
		var p webhook.Payload
		if json.Unmarshal(r.Body, &p) == nil {
			return p.Contact.ID
		}
	}
	return 0
}

// expectedTrace is the trace of a dispatch whose primary channel p ended
// as want, with the fallback channel second.
func expectedTrace(p string, want outcome) []string {
	switch want {
	case viaFallbackTransient:
		return []string{p + ":failed_transient:provider_transient", p + ":failed_transient:provider_transient",
			p + ":failed_transient:provider_transient_exhausted", "fallback:sent:"}
	case viaFallbackAtOnce:
		return []string{p + ":failed_transient:provider_transient_exhausted", "fallback:sent:"}
	case viaFallbackPermanent:
		return []string{p + ":failed_permanent:provider_permanent", "fallback:sent:"}
	}
	return []string{p + ":sent:"}
}

// traceEntry is one entry of a dispatch's trace.
type traceEntry struct{ Channel, Decision, Reason, Detail string }

func traceEntries(t testing.TB, raw string) []traceEntry {
	t.Helper()
	var entries []traceEntry
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		t.Fatalf("trace %q: %v", raw, err)
	}
	return entries
}

// traceOf renders a stored trace as channel:decision:reason.
func traceOf(t testing.TB, raw string) []string {
	t.Helper()
	entries := traceEntries(t, raw)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Channel + ":" + e.Decision + ":" + e.Reason
	}
	return out
}

// post makes one webhook call and returns the dispatch id of its 200.
func post(t testing.TB, base string, form url.Values) int64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/campaign/message", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook call: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		DispatchID int64 `json:"dispatch_id"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.DispatchID == 0 {
		t.Fatalf("webhook call answered %d: %s", resp.StatusCode, body)
	}
	return out.DispatchID
}

func set(ids []int64) map[int64]bool {
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
