package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// answer is what one HTTP attempt of a webhook call got.
type answer struct {
	Status int    // 0: no HTTP answer (transport error)
	Code   string // the JSON error code of an error answer
	ID     int64  // dispatch_id of a 200
	Dup    bool   // a 200 with status "duplicate"
	Err    string // transport error
	Sent   time.Time
	Got    time.Time
}

// key classifies an answer: "200", "503 database_unavailable",
// "connection refused", ...
func (a answer) key() string {
	switch {
	case a.Status == 0 && strings.Contains(a.Err, "connection refused"):
		return "connection refused"
	case a.Status == 0 && strings.Contains(a.Err, "reset by peer"):
		return "connection reset"
	case a.Status == 0 && strings.Contains(a.Err, "EOF"):
		return "connection closed"
	case a.Status == 0:
		return "transport error"
	case a.Code != "":
		return strconv.Itoa(a.Status) + " " + a.Code
	}
	return strconv.Itoa(a.Status)
}

// loadSpec is a bounded load of webhook calls, as Mautic's "Send a
// webhook" action makes them (form-encoded POST with the bearer token).
type loadSpec struct {
	N       int     // requests
	Clients int     // concurrent clients
	Rate    float64 // requests started per second, all clients together (0: unpaced)
	// URL returns the base URL request i goes to (127.0.0.1 only).
	URL func(i int) string
	// Form returns the body of request i.
	Form func(i int) url.Values
	// Retry resends a request, unchanged (same idempotency key), after a
	// transport error or a 503, until another answer or the deadline: a
	// client that insists, so that every request ends with an answer.
	Retry bool
	// For bounds the whole load.
	For time.Duration
}

// load is a running loadSpec.
type load struct {
	spec   loadSpec
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}

	next atomic.Int64
	ok   atomic.Int64 // requests answered 200

	mu       sync.Mutex
	final    []answer // last answer per request
	attempts []answer // every attempt, in completion order
}

// startLoad runs spec in the background.
func startLoad(spec loadSpec) *load {
	ctx, cancel := context.WithTimeout(context.Background(), spec.For)
	l := &load{spec: spec, ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}),
		final: make([]answer, spec.N),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: spec.Clients * 2,
			DisableCompression:  true,
		}}}
	var pace <-chan time.Time
	if spec.Rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / spec.Rate))
		pace = tick.C
		go func() { <-l.done; tick.Stop() }()
	}
	var wg sync.WaitGroup
	for c := 0; c < spec.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.runClient(pace)
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		close(l.done)
	}()
	return l
}

// runClient is one client: it takes the next request (waiting for the
// pace), makes it, and with Retry makes it again until it is answered.
func (l *load) runClient(pace <-chan time.Time) {
	for {
		if pace != nil {
			select {
			case <-pace:
			case <-l.stop:
				return
			case <-l.ctx.Done():
				return
			}
		}
		select {
		case <-l.stop:
			return
		default:
		}
		i := int(l.next.Add(1) - 1)
		if i >= l.spec.N || l.ctx.Err() != nil {
			return
		}
		body := l.spec.Form(i).Encode()
		for {
			a := l.post(l.spec.URL(i), body)
			l.mu.Lock()
			l.final[i] = a
			l.attempts = append(l.attempts, a)
			l.mu.Unlock()
			if a.Status == http.StatusOK {
				l.ok.Add(1)
			}
			if !l.spec.Retry || (a.Status != 0 && a.Status != http.StatusServiceUnavailable) || l.ctx.Err() != nil {
				break
			}
			select {
			case <-l.ctx.Done():
			case <-time.After(50 * time.Millisecond): // a client's pause before it tries again
			}
		}
	}
}

func (l *load) post(base, body string) answer {
	a := answer{Sent: time.Now()}
	req, err := http.NewRequestWithContext(l.ctx, http.MethodPost, base+"/v1/campaign/message", strings.NewReader(body))
	if err != nil {
		a.Err = err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := l.client.Do(req)
	if err != nil {
		a.Err, a.Got = err.Error(), time.Now()
		return a
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a.Got = time.Now()
	if err != nil {
		a.Err = err.Error()
		return a
	}
	a.Status = resp.StatusCode
	var out struct {
		DispatchID int64  `json:"dispatch_id"`
		Status     string `json:"status"`
		Error      struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		a.Code = "not-json"
		return a
	}
	a.ID, a.Dup, a.Code = out.DispatchID, out.Status == "duplicate", out.Error.Code
	return a
}

// OK returns how many requests were answered 200 so far.
func (l *load) OK() int { return int(l.ok.Load()) }

// Started returns how many requests were started so far.
func (l *load) Started() int { return min(int(l.next.Load()), l.spec.N) }

// Stop makes the clients start no new request.
func (l *load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
}

// Wait waits for the load to end and returns its result.
func (l *load) Wait() loadResult {
	<-l.done
	l.client.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := loadResult{Final: append([]answer(nil), l.final...), Attempts: append([]answer(nil), l.attempts...)}
	r.Started = l.Started()
	return r
}

// loadResult is what a load saw.
type loadResult struct {
	Started  int
	Final    []answer // per request (zero for requests never started)
	Attempts []answer
}

// finalCounts counts the final answers by key.
func (r loadResult) finalCounts() map[string]int {
	out := map[string]int{}
	for i, a := range r.Final {
		if i < r.Started {
			out[a.key()]++
		}
	}
	return out
}

// attemptCounts counts every attempt by key.
func (r loadResult) attemptCounts() map[string]int {
	out := map[string]int{}
	for _, a := range r.Attempts {
		out[a.key()]++
	}
	return out
}

// accepted returns the dispatch ids of the requests answered 200.
func (r loadResult) accepted() map[int64]bool {
	out := map[int64]bool{}
	for _, a := range r.Final {
		if a.Status == http.StatusOK {
			out[a.ID] = true
		}
	}
	return out
}

// firstError returns a sample transport error, for messages.
func (r loadResult) firstError() string {
	for _, a := range r.Attempts {
		if a.Err != "" {
			return a.Err
		}
	}
	return ""
}

// counts prints a map of counts sorted by key: "200: 4990, transport: 10".
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
