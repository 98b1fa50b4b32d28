package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseDecide(t *testing.T) {
	out := "goos: linux\ngoarch: amd64\npkg: github.com/mautic-mm/sidecar/bridge\ncpu: AMD EPYC\n" +
		"BenchmarkDecide-2   \t 2894410\t       412.5 ns/op\t     256 B/op\t       5 allocs/op\nPASS\n"
	d, err := parseDecide(out)
	require.NoError(t, err)
	require.InDelta(t, 412.5, d.NsPerOp, 1e-9)
	require.InDelta(t, 1e9/412.5, d.PerSecond, 1e-6)
	require.Equal(t, "BenchmarkDecide-2 2894410 412.5 ns/op 256 B/op 5 allocs/op", d.Line)

	_, err = parseDecide("PASS\n")
	require.Error(t, err)
}
