package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows a long phase's advance on stderr: one line rewritten in
// place with \r on a terminal, a line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	total int64 // 0: unknown
	unit  string

	mu      sync.Mutex
	start   time.Time
	printed time.Time
	done    int64
	dirty   bool
}

// newProgress starts a progress line; total 0 means unknown.
func newProgress(w io.Writer, label string, total int64, unit string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, tty: tty, label: label, total: total, unit: unit, start: time.Now()}
}

// update records done units and reprints when due.
func (p *progress) update(done int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.printed) < every {
		return
	}
	p.printLocked()
}

// finish prints the final state and ends the line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.printLocked()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) printLocked() {
	p.printed = time.Now()
	line := progressLine(p.label, p.done, p.total, p.unit, time.Since(p.start))
	if p.tty {
		fmt.Fprintf(p.w, "\r%-100s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// progressLine formats "label  done/total unit  rate/s  elapsed  ETA".
func progressLine(label string, done, total int64, unit string, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	s := fmt.Sprintf("%-14s %d", label, done)
	if total > 0 {
		s += fmt.Sprintf("/%d", total)
	}
	s += fmt.Sprintf(" %s  %.0f/s  %s", unit, rate, elapsed.Round(100*time.Millisecond))
	if total > 0 && rate > 0 && done < total {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += "  ETA " + eta.Round(time.Second).String()
	}
	return s
}
