package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNum(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0.00"}, {3.14159, "3.14"}, {42.25, "42.2"}, {99.96, "100.0"}, {100, "100"}, {1234.5, "1,235"},
		{1000000, "1,000,000"}, {-12345, "-12,345"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, num(tc.v), "%v", tc.v)
	}
}

// sample is a report as a full run fills it.
func sample() *report {
	return &report{
		Config:  map[string]any{"clients": 32},
		Machine: machine{CPUs: 2, CPUModel: "AMD EPYC", DBVersion: "10.11.19-MariaDB", GoVersion: "go1.26.8"},
		Floor: &floorPhase{
			Insert:  floorResult{Conns: 32, Count: 25000, Seconds: 5, Rate: 5000},
			Contact: floorResult{Conns: 32, Count: 6000, Seconds: 5, Rate: 1200},
		},
		Intake: &intakePhase{Load: intakeStats{Requests: 20000, OK: 20000, Accepted: 20000, Seconds: 4.5, Rate: 4444.4,
			Latency: latency{Count: 20000, P50: 6.5, P90: 9, P99: 14.2, Max: 30}}},
		E2E: &e2ePhase{Backlog: 20000, Drain: drainResult{Start: 20000, Done: 20000, Seconds: 5, Rate: 4000, Complete: true},
			Outcomes: []outcome{{State: "sent", Channel: "email", Count: 19000}, {State: "failed", Reason: "dnc", Count: 1000}}},
		Queue:  &queuePhase{Rows: 20000, Drain: drainResult{Start: 20000, Done: 12000, Seconds: 600, Rate: 20, Reason: "not done"}},
		Memory: &memoryPhase{Backlog: 100000, Peak: 100 << 20, Drain: drainResult{Complete: true}},
		Decide: &decidePhase{NsPerOp: 500, PerSecond: 2e6},
	}
}

func find(t *testing.T, figs []figure, name string) figure {
	t.Helper()
	for _, f := range figs {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no figure %q", name)
	return figure{}
}

func TestFigures(t *testing.T) {
	r := sample()
	figs := r.figures()
	tests := []struct {
		name  string
		value float64
		ratio float64 // 0: none
		pass  string  // "pass", "fail", "" (no target)
	}{
		{"floor: bare INSERT commits", 5000, 0, ""},
		{"floor: per-contact transactions", 1200, 0, ""},
		{"intake", 4444.4, 4444.4 / 5000, "pass"},
		{"intake latency p50", 6.5, 0, ""},
		{"intake latency p99", 14.2, 0, "pass"},
		{"end-to-end", 4000, 4000.0 / 1200, "fail"},
		{"message_queue", 20, 0, "fail"},
		{"peak RSS", 100, 0, "pass"},
		{"routing decision", 2e6, 0, "pass"},
	}
	require.Len(t, figs, len(tests))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := find(t, figs, tc.name)
			require.NotNil(t, f.Value)
			require.InDelta(t, tc.value, *f.Value, 1e-9)
			if tc.ratio == 0 {
				require.Nil(t, f.Ratio)
			} else {
				require.NotNil(t, f.Ratio)
				require.InDelta(t, tc.ratio, *f.Ratio, 1e-9)
			}
			switch tc.pass {
			case "":
				require.Nil(t, f.Pass)
			case "pass":
				require.NotNil(t, f.Pass)
				require.True(t, *f.Pass)
			default:
				require.NotNil(t, f.Pass)
				require.False(t, *f.Pass)
			}
		})
	}
	require.Contains(t, find(t, figs, "message_queue").Note, "incomplete: not done")
}

func TestIntakeFailsOnErrorsOrWithoutFloor(t *testing.T) {
	r := sample()
	r.Intake.Load.OK = 19990
	r.Intake.Load.Other = map[string]int{"429": 10}
	f := find(t, r.figures(), "intake")
	require.False(t, *f.Pass, "answers other than 200 fail the intake")
	require.Contains(t, f.Note, "10 did not (429 x10)")

	r.Floor = nil
	f = find(t, r.figures(), "intake")
	require.Nil(t, f.Ratio, "no floor in this run: no ratio")
	require.Nil(t, f.Pass)
	require.Nil(t, f.Floor)
}

// TestIntakeAgainstTheMeanFloor: with the floor measured again after the
// intake, the ratio is to the mean of both.
func TestIntakeAgainstTheMeanFloor(t *testing.T) {
	r := sample()
	r.Intake.FloorAfter = &floorResult{Rate: 4000}
	f := find(t, r.figures(), "intake")
	require.InDelta(t, 4500, *f.Floor, 1e-9)
	require.InDelta(t, r.Intake.Load.Rate/4500, *f.Ratio, 1e-9)
	require.Contains(t, f.Note, "floor: mean of 5,000 commits/s before and 4,000 after")
	require.Equal(t, 5000.0, *find(t, r.figures(), "floor: bare INSERT commits").Value, "the floor's own line is the one before")
}

func TestRender(t *testing.T) {
	r := sample()
	r.Figures = r.figures()
	var b bytes.Buffer
	require.NoError(t, r.render(&b))
	out := b.String()
	lines := strings.Split(out, "\n")
	require.Regexp(t, `^FIGURE\s+VALUE\s+UNIT\s+FLOOR \(SAME RUN\)\s+RATIO\s+TARGET\s+RESULT$`, lines[0])
	require.Regexp(t, `(?m)^intake\s+4,444\s+req/s\s+5,000 commits/s\s+89%\s+>= 85% of floor\s+PASS$`, out)
	require.Regexp(t, `(?m)^intake latency p99\s+14.2\s+ms\s+< 20 ms\s+PASS$`, out)
	require.Regexp(t, `(?m)^end-to-end\s+4,000\s+dispatches/s\s+1,200 contacts/s\s+333%\s+>= 5,000/s\s+FAIL$`, out)
	require.Regexp(t, `(?m)^peak RSS\s+100\s+MB\s+< 150 MB\s+PASS$`, out)
	require.Contains(t, out, "outcomes: sent/email 19000, failed(dnc) 1000")
	require.Contains(t, out, "machine: 2 CPUs (AMD EPYC)")
}

func TestWriteJSON(t *testing.T) {
	r := sample()
	r.Figures = r.figures()
	path := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, r.writeJSON(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var back struct {
		Figures []figure `json:"figures"`
		Machine machine  `json:"machine"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, r.Figures, back.Figures)
	require.Equal(t, 2, back.Machine.CPUs)
}

func TestDeliveryCheck(t *testing.T) {
	outcomes := []outcome{{State: "sent", Channel: "email", Count: 100}, {State: "sent", Channel: "sms", Count: 10},
		{State: "queued", Channel: "email", Count: 5}, {State: "failed", Reason: "dnc", Count: 3}}
	require.Empty(t, deliveryCheck("e2e", map[string]int{"email": 100, "sms": 10}, outcomes))
	require.Equal(t, []string{
		"queue: the email provider accepted 104 messages but 100 sends were recorded: 4 duplicate sends",
		"queue: 10 sms sends were recorded but the provider accepted only 9 messages",
	}, deliveryCheck("queue", map[string]int{"email": 104, "sms": 9}, outcomes))
}
