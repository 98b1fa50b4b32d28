package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 8 0 123 456 789"
	got, err := parseStatCPU([]byte(stat))
	require.NoError(t, err)
	require.Equal(t, 3250*time.Millisecond, got, "(250 + 75) ticks of 10 ms")
	_, err = parseStatCPU([]byte("garbage"))
	require.Error(t, err)
}

func TestProcMemoryOfSelf(t *testing.T) {
	rss, hwm, err := procMemory(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, rss)
	require.GreaterOrEqual(t, hwm, rss)
	cpu, err := procCPU(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, cpu, time.Duration(0))
}

func TestCPUUse(t *testing.T) {
	u := cpuUse{Wall: 10, Sidecar: 12, MariaDB: 5, Loadgen: 1, Machine: 19, Other: 1}
	require.Equal(t, "cores busy over 10.0s: sidecar 1.20, mariadb 0.50, loadgen+providers 0.10, other processes 0.10", u.String())
	require.Equal(t, "CPU per dispatch: sidecar 600 µs, mariadb 250 µs, loadgen+providers 50 µs; "+
		"2 idle cores would allow about 2,222/s (2,353/s with the providers elsewhere)", u.perUnit(20000, "dispatch", 2))
	u.MariaDB, u.Other = -1, -1
	require.Equal(t, "cores busy over 10.0s: sidecar 1.20, loadgen+providers 0.10", u.String())
	require.Equal(t, "CPU per dispatch: sidecar 600 µs, loadgen+providers 50 µs", u.perUnit(20000, "dispatch", 2))
	require.Empty(t, u.perUnit(0, "dispatch", 2))
}

func TestCPUMarks(t *testing.T) {
	from := cpuMark{at: time.Unix(100, 0), sidecar: time.Second, db: 2 * time.Second, self: 0, machine: 10 * time.Second, dbOK: true, machineOK: true}
	to := cpuMark{at: time.Unix(110, 0), sidecar: 9 * time.Second, db: 6 * time.Second, self: time.Second, machine: 26 * time.Second, dbOK: true, machineOK: true}
	require.Equal(t, cpuUse{Wall: 10, Sidecar: 8, MariaDB: 4, Loadgen: 1, Machine: 16, Other: 3}, to.since(from))
	to.dbOK = false
	require.Equal(t, cpuUse{Wall: 10, Sidecar: 8, MariaDB: -1, Loadgen: 1, Machine: -1, Other: -1}, to.since(from))
}

func TestParseMachineCPU(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
	got, err := parseMachineCPU([]byte(stat))
	require.NoError(t, err)
	require.Equal(t, 161*clockTick, got, "user+nice+system+irq+softirq+steal")
	_, err = parseMachineCPU([]byte("intr 1 2 3\n"))
	require.Error(t, err)
}
