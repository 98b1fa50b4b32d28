package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// decidePhase is the pure routing decision's speed, from the lead's Go
// benchmark bridge.BenchmarkDecide.
type decidePhase struct {
	NsPerOp   float64 `json:"ns_per_op"`
	PerSecond float64 `json:"per_second"`
	Line      string  `json:"line"`
}

var benchLine = regexp.MustCompile(`(?m)^BenchmarkDecide(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op.*$`)

// runDecide runs `go test -run XXX -bench BenchmarkDecide ./bridge/` in the
// module root.
func runDecide(ctx context.Context, repo string) (*decidePhase, error) {
	if repo == "" {
		var err error
		if repo, err = moduleRoot(); err != nil {
			return nil, err
		}
	}
	// One core, as the target is stated: -cpu 1 runs it with GOMAXPROCS=1.
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "XXX", "-bench", "^BenchmarkDecide$", "-benchtime", "2s", "-count", "1", "-cpu", "1", "./bridge/")
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkDecide: %w\n%s", err, strings.TrimSpace(out.String()))
	}
	return parseDecide(out.String())
}

// parseDecide reads the benchmark's ns/op from go test's output.
func parseDecide(out string) (*decidePhase, error) {
	m := benchLine.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no BenchmarkDecide result in:\n%s", strings.TrimSpace(out))
	}
	ns, err := strconv.ParseFloat(m[1], 64)
	if err != nil || ns <= 0 {
		return nil, fmt.Errorf("bad BenchmarkDecide result %q", m[0])
	}
	return &decidePhase{NsPerOp: ns, PerSecond: 1e9 / ns, Line: strings.Join(strings.Fields(m[0]), " ")}, nil
}

// moduleRoot finds the sidecar's module root from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/mautic-mm/sidecar")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: not inside the sidecar's source tree (use --repo)")
		}
		dir = parent
	}
}
