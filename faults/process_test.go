package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mautic-mm/sidecar/internal/testdb"
)

// token is SIDECAR_TOKEN of every process in the suite.
const token = "faults-token-6c1e0d7b9a"

// sidecar is one `sidecar serve` child process.
type sidecar struct {
	t       testing.TB
	name    string
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startSidecar runs `sidecar serve` on addr ("" picks a free port) with
// exactly env (nothing is inherited from the test's environment) and waits
// until /readyz answers 200.
func startSidecar(t testing.TB, name, addr string, env map[string]string) *sidecar {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	full := map[string]string{}
	for k, v := range env {
		full[k] = v
	}
	full["SIDECAR_LISTEN"] = addr
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("sidecar log: %v", err)
	}
	cmd := exec.Command(sidecarBin, "serve")
	cmd.Env = envList(full)
	cmd.Stdout, cmd.Stderr = f, f
	// The child must not outlive the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start sidecar %s: %v", name, err)
	}
	s := &sidecar{t: t, name: name, addr: addr, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		f.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		if !t.Failed() {
			return
		}
		t.Logf("last lines of sidecar %s's log:\n%s", s.name, s.tail(30))
		if dir := os.Getenv("SIDECAR_FAULTS_LOGS"); dir != "" {
			// The whole log, kept for the investigation.
			keep := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+s.name+".log")
			if err := os.WriteFile(keep, []byte(s.log()), 0o644); err == nil {
				t.Logf("the whole log is in %s", keep)
			}
		}
	})
	s.waitReady(60 * time.Second)
	return s
}

// URL is the process's base URL.
func (s *sidecar) URL() string { return "http://" + s.addr }

func (s *sidecar) waitReady(timeout time.Duration) {
	s.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if resp, err := client.Get(s.URL() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.exited:
			s.t.Fatalf("sidecar %s exited before it was ready (%v):\n%s", s.name, s.waitErr, s.tail(30))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sidecar %s not ready after %s:\n%s", s.name, timeout, s.tail(30))
		}
	}
}

func (s *sidecar) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL (no chance to clean up) and waits for
// it to be gone.
func (s *sidecar) kill() {
	if s.alive() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.exited
}

// term sends SIGTERM and waits up to timeout for the process to exit. It
// returns the exit code and how long the process took.
func (s *sidecar) term(timeout time.Duration) (code int, took time.Duration) {
	s.t.Helper()
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.kill()
		s.t.Fatalf("sidecar %s did not exit within %s of SIGTERM:\n%s", s.name, timeout, s.tail(30))
	}
	return s.cmd.ProcessState.ExitCode(), time.Since(start)
}

// log returns the process's whole output (JSON log lines).
func (s *sidecar) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// grep returns the log lines that contain sub.
func (s *sidecar) grep(sub string) string {
	var out []string
	for _, l := range strings.Split(s.log(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// tail returns the last n lines of the log.
func (s *sidecar) tail(n int) string {
	lines := strings.Split(strings.TrimRight(s.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// records returns the JSON log lines with message msg (numbers as
// json.Number).
func (s *sidecar) records(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.log()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var rec map[string]any
		if dec.Decode(&rec) != nil || rec["msg"] != msg {
			continue
		}
		out = append(out, rec)
	}
	return out
}

// logCount counts the JSON log lines with message msg whose attributes
// include every key/value of attrs.
func (s *sidecar) logCount(msg string, attrs map[string]string) int {
	n := 0
	for _, rec := range s.records(msg) {
		ok := true
		for k, v := range attrs {
			if fmt.Sprint(rec[k]) != v {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// levelCounts counts the log lines by "LEVEL message".
func (s *sidecar) levelCounts() map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(s.log()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var rec struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		out[rec.Level+" "+rec.Msg]++
	}
	return out
}

// metric reads one sample of the process's /metrics, e.g.
// metric(`sidecar_sender_breaker_state{channel="sms"}`); -1 when absent.
func (s *sidecar) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", s.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(body, []byte("\n")) {
		l := string(line)
		if strings.HasPrefix(l, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, series)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// baseEnv is the configuration every process of a test shares: its
// database and the token. Log lines are JSON at info: one per dispatch.
func baseEnv(db *testdb.DB) map[string]string {
	return map[string]string{
		"MAUTIC_DB_DSN":       db.DSN,
		"MAUTIC_TABLE_PREFIX": db.Prefix,
		"SIDECAR_TOKEN":       token,
		"SIDECAR_LOG_LEVEL":   "info",
		"SIDECAR_LOG_FORMAT":  "json",
	}
}

// freeAddr returns 127.0.0.1:<a port free now>.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// envList turns the map into sorted KEY=VALUE lines.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// merge returns the union of the maps (later ones win).
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// with returns a copy of env with the KEY=VALUE overrides applied.
func with(env map[string]string, kv ...string) map[string]string {
	out := merge(env)
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		out[k] = v
	}
	return out
}

// eventually polls cond every 20 ms until it holds, failing the test with
// what after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
