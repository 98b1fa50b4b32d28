package main

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// loadgenTag starts loadgen's own queries during a phase, so the sampler
// leaves them out.
const loadgenTag = "/* loadgen */ "

// querySampler samples the database's process list while a sidecar runs:
// which statements of the bench database are executing, and in which
// state. It needs no server setting (performance_schema is off by default in
// MariaDB) and changes nothing on the server. Averaged over the samples, a
// statement's count is the number of connections busy with it (Little's
// law: rate × latency), which shows where the database time goes.
type querySampler struct {
	db     *sqlx.DB
	dbName string
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	samples int
	queries map[string]int
	states  map[string]int
}

// dbActivity is what the sampler saw.
type dbActivity struct {
	Samples int `json:"samples"`
	// Busy is the average number of the bench database's statements running.
	Busy    float64     `json:"busy"`
	Queries []busyShare `json:"queries"` // most frequent first
	States  []busyShare `json:"states"`
}

// busyShare is a statement (or a thread state) and the average number of
// connections running it.
type busyShare struct {
	What string  `json:"what"`
	Busy float64 `json:"busy"`
}

func startQuerySampler(db *sqlx.DB, dbName string, every time.Duration) *querySampler {
	s := &querySampler{db: db, dbName: dbName, stop: make(chan struct{}), done: make(chan struct{}),
		queries: map[string]int{}, states: map[string]int{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *querySampler) sample() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, loadgenTag+"SELECT COALESCE(LEFT(INFO, 600), ''), COALESCE(STATE, '') FROM information_schema.PROCESSLIST"+
		" WHERE DB = ? AND COMMAND = 'Query' AND ID <> CONNECTION_ID()", s.dbName)
	if err != nil {
		return
	}
	defer rows.Close()
	var qs, sts []string
	for rows.Next() {
		var info, state string
		if rows.Scan(&info, &state) != nil {
			return
		}
		if strings.HasPrefix(info, strings.TrimSpace(loadgenTag)) {
			continue
		}
		qs = append(qs, normalizeSQL(info))
		if state == "" {
			state = "(none)"
		}
		sts = append(sts, state)
	}
	if rows.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for _, q := range qs {
		s.queries[q]++
	}
	for _, st := range sts {
		s.states[st]++
	}
}

// finish stops sampling and returns the top statements and states.
func (s *querySampler) finish() dbActivity {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	a := dbActivity{Samples: s.samples}
	if s.samples == 0 {
		return a
	}
	total := 0
	for _, n := range s.queries {
		total += n
	}
	a.Busy = float64(total) / float64(s.samples)
	a.Queries = topShares(s.queries, s.samples, 12)
	a.States = topShares(s.states, s.samples, 8)
	return a
}

func topShares(m map[string]int, samples, n int) []busyShare {
	out := make([]busyShare, 0, len(m))
	for k, v := range m {
		out = append(out, busyShare{What: k, Busy: float64(v) / float64(samples)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Busy != out[j].Busy {
			return out[i].Busy > out[j].Busy
		}
		return out[i].What < out[j].What
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

var (
	sqlString  = regexp.MustCompile(`(?:_binary\s*)?'(?:[^'\\]|\\.|'')*'`)
	sqlNumber  = regexp.MustCompile(`-?\b\d+(?:\.\d+)?\b`)
	sqlList    = regexp.MustCompile(`\(\s*\?(?:\s*,\s*\?)+\s*\)`)
	sqlValues  = regexp.MustCompile(`(?is)\bVALUES\s*\(.*?\)(?:\s*,\s*\(.*?\))+`)
	sqlSpaces  = regexp.MustCompile(`\s+`)
	maxSQLText = 150
)

// normalizeSQL turns a statement with interpolated values into its shape:
// literals become ?, lists (?, ?, ...) and multi-row VALUES collapse.
func normalizeSQL(q string) string {
	q = sqlSpaces.ReplaceAllString(strings.TrimSpace(q), " ")
	q = sqlString.ReplaceAllString(q, "?")
	q = sqlNumber.ReplaceAllString(q, "?")
	q = sqlList.ReplaceAllString(q, "(?, ...)")
	q = sqlValues.ReplaceAllString(q, "VALUES (...), ...")
	if len(q) > maxSQLText {
		q = q[:maxSQLText] + "…"
	}
	return q
}
