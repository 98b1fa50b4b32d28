package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mautic-mm/sidecar/internal/plans"
)

// The targets of issue #6.
const (
	targetIntakeRatio = 0.85      // of the insert floor
	targetIntakeP99   = 20.0      // ms
	targetE2E         = 5000.0    // dispatches/s
	targetQueue       = 3000.0    // rows/s
	targetRSS         = 150.0     // MB
	targetDecide      = 1000000.0 // decisions/s
)

// report is everything a run measured.
type report struct {
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Config   map[string]any `json:"config"`
	Machine  machine        `json:"machine"`
	Sidecar  []string       `json:"sidecar_env"`
	Dataset  *dataset       `json:"dataset,omitempty"`
	Floor    *floorPhase    `json:"floor,omitempty"`
	Intake   *intakePhase   `json:"intake,omitempty"`
	E2E      *e2ePhase      `json:"e2e,omitempty"`
	Queue    *queuePhase    `json:"queue,omitempty"`
	Memory   *memoryPhase   `json:"memory,omitempty"`
	Plans    *plansPhase    `json:"plans,omitempty"`
	Decide   *decidePhase   `json:"decide,omitempty"`
	Errors   []string       `json:"errors,omitempty"`
	Figures  []figure       `json:"figures"`
	Warnings []string       `json:"warnings,omitempty"`
}

// floorPhase holds both floors.
type floorPhase struct {
	Insert  floorResult `json:"insert"`
	Contact floorResult `json:"per_contact"`
}

// figure is one line of the result table.
type figure struct {
	Name      string   `json:"name"`
	Value     *float64 `json:"value"` // nil: not measured
	Unit      string   `json:"unit"`
	Floor     *float64 `json:"floor,omitempty"`
	FloorUnit string   `json:"floor_unit,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
	Target    string   `json:"target,omitempty"`
	Pass      *bool    `json:"pass,omitempty"` // nil: no target
	Note      string   `json:"note,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// figures derives the table from the phases that ran.
func (r *report) figures() []figure {
	var out []figure
	var insertFloor, contactFloor *float64
	if f := r.Floor; f != nil {
		insertFloor, contactFloor = ptr(f.Insert.Rate), ptr(f.Contact.Rate)
		out = append(out,
			figure{Name: "floor: bare INSERT commits", Value: insertFloor, Unit: "commits/s",
				Note: fmt.Sprintf("%d connections, autocommit single-row INSERT, %d in %.1fs", f.Insert.Conns, f.Insert.Count, f.Insert.Seconds)},
			figure{Name: "floor: per-contact transactions", Value: contactFloor, Unit: "contacts/s",
				Note: fmt.Sprintf("%d connections, 1 transaction and 6 statements per contact, %d in %.1fs", f.Contact.Conns, f.Contact.Count,
					f.Contact.Seconds)})
	}
	if in := r.Intake; in != nil {
		l := in.Load
		f := figure{Name: "intake", Value: ptr(l.Rate), Unit: "req/s", Floor: insertFloor, FloorUnit: "commits/s",
			Target: fmt.Sprintf(">= %.0f%% of floor", targetIntakeRatio*100),
			Note:   fmt.Sprintf("%d requests by %d clients in %.1fs, %d answered 200", l.Requests, r.clients(), l.Seconds, l.OK)}
		if bad := l.Requests - l.OK; bad > 0 {
			f.Note += fmt.Sprintf(", %d did not (%s)", bad, statusLine(l.Other))
		}
		if r.Floor != nil {
			rate, note := intakeFloor(&r.Floor.Insert, in)
			f.Floor = ptr(rate)
			f.Note += note
		}
		if f.Floor != nil && *f.Floor > 0 {
			f.Ratio = ptr(l.Rate / *f.Floor)
			f.Pass = ptr(*f.Ratio >= targetIntakeRatio && l.OK == l.Requests)
		}
		out = append(out, f,
			figure{Name: "intake latency p50", Value: ptr(l.Latency.P50), Unit: "ms",
				Note: fmt.Sprintf("p90 %.2f ms, max %.2f ms", l.Latency.P90, l.Latency.Max)},
			figure{Name: "intake latency p99", Value: ptr(l.Latency.P99), Unit: "ms", Target: fmt.Sprintf("< %.0f ms", targetIntakeP99),
				Pass: ptr(l.Latency.Count > 0 && l.Latency.P99 < targetIntakeP99)})
	}
	if e := r.E2E; e != nil {
		d := e.Drain
		f := figure{Name: "end-to-end", Value: ptr(d.Rate), Unit: "dispatches/s", Floor: contactFloor, FloorUnit: "contacts/s",
			Target: fmt.Sprintf(">= %s/s", num(targetE2E)), Pass: ptr(d.Complete && d.Rate >= targetE2E),
			Note: fmt.Sprintf("%d routed in %.1fs", d.Done, d.Seconds)}
		if !d.Complete {
			f.Note += "; incomplete: " + d.Reason
		}
		if contactFloor != nil && *contactFloor > 0 {
			f.Ratio = ptr(d.Rate / *contactFloor)
		}
		out = append(out, f)
	}
	if q := r.Queue; q != nil {
		d := q.Drain
		f := figure{Name: "message_queue", Value: ptr(d.Rate), Unit: "rows/s", Target: fmt.Sprintf(">= %s/s", num(targetQueue)),
			Pass: ptr(d.Complete && d.Rate >= targetQueue), Note: fmt.Sprintf("%d due rows processed in %.1fs", d.Done, d.Seconds)}
		if !d.Complete {
			f.Note += "; incomplete: " + d.Reason
		}
		out = append(out, f)
	}
	if m := r.Memory; m != nil {
		mb := float64(m.Peak) / (1 << 20)
		out = append(out, figure{Name: "peak RSS", Value: ptr(mb), Unit: "MB", Target: fmt.Sprintf("< %.0f MB", targetRSS),
			Pass: ptr(m.Peak > 0 && mb < targetRSS && m.Drain.Complete),
			Note: fmt.Sprintf("VmHWM %.1f MB taking in %d, %.1f MB routing them", float64(m.IntakeSidecar.HWM)/(1<<20), m.Backlog,
				float64(m.RouteSidecar.HWM)/(1<<20))})
	}
	if p := r.Plans; p != nil {
		out = append(out, figure{Name: "hot read plans", Value: ptr(float64(len(p.Problems))), Unit: "problems", Target: "0",
			Pass: ptr(len(p.Problems) == 0),
			Note: fmt.Sprintf("%d statements EXPLAINed for a batch of %d contacts; a problem is a full scan of a table of more than %d rows,"+
				" or a claim that sorts", len(p.Plans), p.Batch, plans.DefaultBigTable)})
	}
	if d := r.Decide; d != nil {
		out = append(out, figure{Name: "routing decision", Value: ptr(d.PerSecond), Unit: "decisions/s",
			Target: fmt.Sprintf(">= %s/s", num(targetDecide)), Pass: ptr(d.PerSecond >= targetDecide),
			Note: fmt.Sprintf("BenchmarkDecide %.1f ns/op", d.NsPerOp)})
	}
	return out
}

func (r *report) clients() int {
	if c, ok := r.Config["clients"].(int); ok {
		return c
	}
	return 0
}

// statusLine prints a status count map as "429 x3, 503 x1".
func statusLine(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// num formats a number for people: thousands separated, one decimal under
// 100, two under 10.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case math.Abs(v) < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case math.Abs(v) < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// render writes the result table, the phase details and the machine.
func (r *report) render(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tFLOOR (SAME RUN)\tRATIO\tTARGET\tRESULT")
	for _, f := range r.Figures {
		value, floor, ratio, result := "n/a", "", "", "-"
		if f.Value != nil {
			value = num(*f.Value)
		}
		if f.Floor != nil {
			floor = num(*f.Floor) + " " + f.FloorUnit
		}
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.0f%%", *f.Ratio*100)
		}
		if f.Pass != nil {
			result = "FAIL"
			if *f.Pass {
				result = "PASS"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, value, f.Unit, floor, ratio, f.Target, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  %-32s %s\n", f.Name+":", f.Note)
		}
	}
	r.renderDetails(w)
	if p := r.Plans; p != nil {
		fmt.Fprintf(w, "\nquery plans (EXPLAIN) at %d contacts, a batch of %d:\n\n", r.Config["contacts"], p.Batch)
		if err := plans.Markdown(w, p.Plans); err != nil {
			return err
		}
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "problem: %s\n", pr)
		}
	}
	fmt.Fprintln(w)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s RAM, kernel %s, load average at start %s\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.LoadAvg)
	fmt.Fprintf(w, "database: %s %s\n", m.DBVersion, settingsLine(m.DBSettings))
	fmt.Fprintf(w, "go: %s; sidecar: %s\n", m.GoVersion, m.SidecarVersion)
	if len(r.Sidecar) > 0 {
		fmt.Fprintf(w, "sidecar environment (besides the phase's SIDECAR_WORKERS/SIDECAR_QUEUE): %s\n", strings.Join(r.Sidecar, " "))
	}
	if ds := r.Dataset; ds != nil {
		fmt.Fprintf(w, "dataset: %d contacts (seed %d) seeded in %.1fs: %s\n", ds.Contacts, ds.Seed, ds.Seconds, settingsLine(rowsLine(ds.Rows)))
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	fmt.Fprintf(w, "run took %.1fs\n", r.Seconds)
	return nil
}

// renderDetails prints per-phase outcomes, CPU and sidecar log summaries.
func (r *report) renderDetails(w io.Writer) {
	line := func(phase, format string, args ...any) {
		fmt.Fprintf(w, "  %-32s %s\n", phase+":", fmt.Sprintf(format, args...))
	}
	sidecar := func(phase string, s stopResult, units int64, unit string) {
		if s.CPU.Wall == 0 { // the process never ran (an interrupted phase)
			return
		}
		line(phase, "%s; sidecar VmHWM %.1f MB, stopped in %.1fs, exit %d", s.CPU, float64(s.HWM)/(1<<20), s.StopSecs, s.ExitCode)
		if pu := s.CPU.perUnit(units, unit, r.Machine.CPUs); pu != "" {
			line(phase, "%s", pu)
		}
		if len(s.Log) > 0 {
			line(phase, "sidecar log: %s", statusLine(s.Log))
		}
		if a := s.DB; a.Samples > 0 {
			line(phase, "database busy with %.1f statements on average (%d samples); states: %s", a.Busy, a.Samples, shareLine(a.States, 5))
			for i, q := range a.Queries {
				if i == 5 {
					break
				}
				line(phase, "  %5.2f  %s", q.Busy, q.What)
			}
		}
	}
	if f := r.Floor; f != nil {
		line("insert floor", "%s", f.Insert.CPU)
		line("insert floor", "%s; latency p50 %.2f ms, p99 %.2f ms", f.Insert.CPU.perUnit(f.Insert.Count, "commit", r.Machine.CPUs),
			f.Insert.Latency.P50, f.Insert.Latency.P99)
		line("per-contact floor", "%s", f.Contact.CPU)
		line("per-contact floor", "%s; latency p50 %.2f ms, p99 %.2f ms", f.Contact.CPU.perUnit(f.Contact.Count, "contact", r.Machine.CPUs),
			f.Contact.Latency.P50, f.Contact.Latency.P99)
	}
	if in := r.Intake; in != nil {
		line("intake", "%s", in.Settle)
		sidecar("intake", in.Sidecar, int64(in.Load.OK), "request")
		if a := in.FloorAfter; a != nil {
			line("insert floor (after)", "%s commits/s; %s", num(a.Rate), a.CPU.perUnit(a.Count, "commit", r.Machine.CPUs))
		}
	}
	if e := r.E2E; e != nil {
		line("e2e", "backlog %d %s", e.Backlog, e.BacklogSource)
		if e.InsertSeconds > 0 {
			line("e2e", "backlog written in %.1fs, after removing %d accepted dispatches left by earlier phases", e.InsertSeconds, e.Cleared)
		}
		line("e2e", "%s", e.Settle)
		line("e2e", "outcomes: %s", outcomeLine(e.Outcomes))
		line("e2e", "providers accepted: %s", statusLine(e.Delivered))
		sidecar("e2e", e.Sidecar, e.routed(), "dispatch")
	}
	if q := r.Queue; q != nil {
		line("queue", "%d rows written in %.1fs; outcomes (status/channel): %s", q.Rows, q.InsertSeconds, outcomeLine(q.Outcomes))
		line("queue", "providers accepted: %s", statusLine(q.Delivered))
		line("queue", "%s", q.Settle)
		sidecar("queue", q.Sidecar, int64(q.Rows)-q.Drain.Left, "row")
	}
	if m := r.Memory; m != nil {
		line("memory", "intake %s req/s (p99 %.2f ms), then routing %s dispatches/s (%d in %.1fs)", num(m.Intake.Rate), m.Intake.Latency.P99,
			num(m.Drain.Rate), m.Drain.Done, m.Drain.Seconds)
		line("memory", "before the intake: %s; before routing: %s", m.IntakeSettle, m.RouteSettle)
		if len(m.Outcomes) > 0 {
			line("memory", "outcomes: %s", outcomeLine(m.Outcomes))
		}
		sidecar("memory intake", m.IntakeSidecar, int64(m.Intake.OK), "request")
		sidecar("memory routing", m.RouteSidecar, int64(m.Intake.Accepted)-m.Drain.Left, "dispatch")
	}
	if p := r.Plans; p != nil {
		line("plans", "rows added first (then analyzed): %s; %.1fs in all", settingsLine(rowsLine(p.Fixtures)), p.Seconds)
		line("plans", "%s", p.Settle)
	}
}

// shareLine prints the first n shares as "what 1.23, ...".
func shareLine(shares []busyShare, n int) string {
	var parts []string
	for i, sh := range shares {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", sh.What, sh.Busy))
	}
	return strings.Join(parts, ", ")
}

func settingsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func rowsLine(m map[string]int64) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = strconv.FormatInt(v, 10)
	}
	return out
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
