// Package faults is the process-level fault suite (issue #7): real
// `sidecar serve` processes built from cmd/sidecar, a real MariaDB, and the
// sandbox's stand-in providers on loopback, in this test process. Each test
// injects one fault under load and checks the guarantees of DESIGN.md
// section 5 with numbers: requests accepted, dispatches sent, provider
// deliveries, duplicates, losses.
//
//	TestCrashUnderLoad                SIGKILL during a 5,000-request load, then restart
//	TestDatabaseOutage                a private mariadbd killed for 10 s under load
//	TestProviderFaults                500, 429 + Retry-After, timeouts, resets, garbage, 4xx per provider
//	TestReplicasWithDuplicateWebhooks three processes, every webhook posted twice, frequency limits
//	TestGracefulShutdownUnderLoad     SIGTERM under load, and with a hung provider
//	TestSecretsNeverPrinted           a debug-level serve run and `sidecar check` with every secret set
//
// Every load is bounded in requests and time and targets 127.0.0.1 only.
// SIDECAR_SOAK=1 (`make soak`) runs larger variants: ten times the load,
// nine kills instead of one, five SIGTERMs, a 60 s database outage.
// SIDECAR_FAULTS_REPORT=path appends the measured rows (markdown) to path;
// SIDECAR_FAULTS_LOGS=dir keeps the whole log of every process of a failed
// test there.
package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// sidecarBin is bin/sidecar built once for the whole suite.
var sidecarBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sidecar-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sidecarBin = filepath.Join(dir, "sidecar")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", sidecarBin, "github.com/mautic-mm/sidecar/cmd/sidecar")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: build cmd/sidecar: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
