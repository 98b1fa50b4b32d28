package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// events renders go test -json lines.
func events(t *testing.T, evs ...event) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// The suite runs the database packages twice (without and with a table
// prefix): a test that fails in the first run and passes in the second
// must still be reported with the first run's output.
func TestFailureOutputSurvivesALaterPassingRun(t *testing.T) {
	const pkg = "example.test/p"
	in := events(t,
		event{Action: "run", Package: pkg, Test: "TestX"},
		event{Action: "output", Package: pkg, Test: "TestX", Output: "    x_test.go:9: the first run's reason\n"},
		event{Action: "fail", Package: pkg, Test: "TestX"},
		event{Action: "output", Package: pkg, Output: "FAIL\texample.test/p\t0.1s\n"},
		event{Action: "fail", Package: pkg},
		event{Action: "run", Package: pkg, Test: "TestX"},
		event{Action: "output", Package: pkg, Test: "TestX", Output: "    x_test.go:9: a passing run's log\n"},
		event{Action: "pass", Package: pkg, Test: "TestX"},
		event{Action: "output", Package: pkg, Output: "ok  \texample.test/p\t0.1s\n"},
		event{Action: "pass", Package: pkg},
	)
	var out strings.Builder
	if code := run(strings.NewReader(in), &out); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL: example.test/p TestX\n    x_test.go:9: the first run's reason\n",
		"1 passed, 1 failed, 0 skipped",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "a passing run's log") {
		t.Errorf("a passing run's output is printed:\n%s", got)
	}
}

func TestAllPassing(t *testing.T) {
	const pkg = "example.test/p"
	in := events(t,
		event{Action: "run", Package: pkg, Test: "TestY"},
		event{Action: "output", Package: pkg, Test: "TestY", Output: "    y_test.go:3: log\n"},
		event{Action: "pass", Package: pkg, Test: "TestY"},
		event{Action: "run", Package: pkg, Test: "TestZ"},
		event{Action: "skip", Package: pkg, Test: "TestZ"},
	)
	var out strings.Builder
	if code := run(strings.NewReader(in), &out); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, out.String())
	}
	if got := out.String(); got != "\n1 passed, 0 failed, 1 skipped\n" {
		t.Errorf("output %q", got)
	}
}

func TestNoTestRanFails(t *testing.T) {
	var out strings.Builder
	if code := run(strings.NewReader(""), &out); code != 1 {
		t.Fatalf("exit code %d, want 1 when no test ran", code)
	}
}
