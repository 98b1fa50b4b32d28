package faults

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// measured is one row of the table in docs/reliability.md.
type measured struct {
	Fault      string
	Requests   int // webhook calls made (each distinct)
	Accepted   int // answered 200 (accepted or duplicate of an accepted one)
	Sent       int // dispatches in state sent at the end
	Deliveries int // messages the stand-in providers accepted
	Duplicated int // deliveries beyond the first for one dispatch
	Lost       int // accepted dispatches not in a terminal state, or sent without a delivery
	Note       string
}

var reportMu sync.Mutex

// report logs the row and appends it to $SIDECAR_FAULTS_REPORT when set.
func report(t testing.TB, m measured) {
	t.Helper()
	line := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %s |", m.Fault, m.Requests, m.Accepted, m.Sent, m.Deliveries,
		m.Duplicated, m.Lost, m.Note)
	t.Log("measured: " + line)
	path := os.Getenv("SIDECAR_FAULTS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// soak reports whether the long variants run (`make soak`).
func soak() bool { return os.Getenv("SIDECAR_SOAK") == "1" }

// pick returns ci, or inSoak under `make soak`.
func pick(ci, inSoak int) int {
	if soak() {
		return inSoak
	}
	return ci
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }
