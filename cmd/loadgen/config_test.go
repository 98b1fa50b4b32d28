package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	env := func(k string) string {
		if k == "MYSQL_TEST_DSN" {
			return "u@tcp(127.0.0.1:3307)/"
		}
		return ""
	}
	c, err := parseConfig([]string{"--contacts", "500", "--phases", "decide"}, env, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "u@tcp(127.0.0.1:3307)/", c.ServerDSN)
	require.Equal(t, amount{N: 500}, c.Intake, "intake defaults to one request per contact")
	require.Equal(t, 500, c.E2E, "the e2e backlog defaults to one dispatch per contact")
	require.Equal(t, []string{phaseDecide}, c.Phases)
	require.False(t, c.Workers.Given)

	c, err = parseConfig([]string{"--intake", "30s", "--workers", "0", "--batch", "128", "--env", "SIDECAR_DB_MAX_CONNS=32",
		"--phases", "queue,floor", "--sidecar", "/nonexistent"}, func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "/nonexistent", "phases that run the sidecar need the binary")

	c, err = parseConfig([]string{"--intake", "30s", "--workers", "0", "--batch", "128", "--env", "SIDECAR_DB_MAX_CONNS=32",
		"--phases", "floor"}, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "root@tcp(127.0.0.1:3306)/", c.ServerDSN)
	require.Equal(t, amount{For: 30 * time.Second}, c.Intake)
	require.Equal(t, optionalInt{V: 0, Given: true}, c.Workers)
	require.Equal(t, optionalInt{V: 128, Given: true}, c.Batch)
	require.Equal(t, []string{"SIDECAR_DB_MAX_CONNS=32"}, c.Env)

	for _, bad := range [][]string{
		{"--phases", "nope"}, {"--phases", "decide", "--db", "x;drop"}, {"--phases", "decide", "--intake", "many"}, {"--phases", "decide", "--intake", "0"},
		{"--phases", "decide", "--env", "NOEQUALS"}, {"--phases", "decide", "--contacts", "0"},
		{"--phases", "decide", "--contacts", "10", "--e2e", "11"}, {"--phases", "decide", "--e2e", "-1"},
		{"--phases", "decide", "--prefix", "bad prefix"}, {"--phases", "decide", "--workers", "-1"}, {"--phases", "decide", "extra"},
	} {
		_, err := parseConfig(bad, func(string) string { return "" }, io.Discard)
		require.Error(t, err, "%v", bad)
	}
}

func TestParsePhases(t *testing.T) {
	all, err := parsePhases("all")
	require.NoError(t, err)
	require.Equal(t, allPhases, all)
	got, err := parsePhases("memory, intake,floor")
	require.NoError(t, err)
	require.Equal(t, []string{phaseFloor, phaseIntake, phaseMemory}, got, "phases run in their fixed order")
	_, err = parsePhases(" , ")
	require.Error(t, err)
}

func TestSpreadSamplesTheWholeDataset(t *testing.T) {
	seen := map[int64]bool{}
	for i := 0; i < 4; i++ {
		seen[spread(i, 4, 1000)] = true
	}
	require.Equal(t, map[int64]bool{1: true, 251: true, 501: true, 751: true}, seen, "4 dispatches over 1,000 contacts")
	for i := 0; i < 1000; i++ {
		c := spread(i, 1000, 1000)
		require.Equal(t, int64(i+1), c, "one dispatch per contact when there are as many")
	}
	require.Equal(t, int64(3), spread(12, 15, 10), "more dispatches than contacts cycle")
}
