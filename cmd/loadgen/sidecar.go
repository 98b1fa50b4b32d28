package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// launcher starts `sidecar serve` children with one environment.
type launcher struct {
	db     *benchDB // sampled while a sidecar runs
	bin    string
	env    map[string]string
	logDir string
	token  string
	dbPID  int
}

// sidecarProc is a running `sidecar serve` child.
type sidecarProc struct {
	name    string
	cmd     *exec.Cmd
	URL     string
	logPath string
	exited  chan struct{}
	waitErr error
	rss     *rssSampler
	queries *querySampler
	cpu0    cpuMark
	dbPID   int
}

// stopResult is what stopping a sidecar tells.
type stopResult struct {
	PeakRSS  int64          `json:"peak_rss_bytes"` // highest VmRSS sampled
	HWM      int64          `json:"vmhwm_bytes"`    // the kernel's peak RSS
	CPU      cpuUse         `json:"cpu"`
	ExitCode int            `json:"exit_code"`
	StopSecs float64        `json:"stop_seconds"`
	Log      map[string]int `json:"log,omitempty"` // "LEVEL message" → count
	// DB is what the bench database was busy with while the sidecar ran.
	DB dbActivity `json:"db"`
}

// start runs the sidecar with overrides on top of the launcher's
// environment and waits until /readyz answers 200.
func (l *launcher) start(ctx context.Context, name string, overrides map[string]string) (*sidecarProc, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for k, v := range l.env {
		env[k] = v
	}
	for k, v := range overrides {
		env[k] = v
	}
	env["SIDECAR_LISTEN"] = addr
	logPath := filepath.Join(l.logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("sidecar log: %w", err)
	}
	cmd := exec.Command(l.bin, "serve")
	cmd.Env = envList(env)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The sidecar must not outlive loadgen.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", l.bin, err)
	}
	p := &sidecarProc{name: name, cmd: cmd, URL: "http://" + addr, logPath: logPath, exited: make(chan struct{}), dbPID: l.dbPID}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	p.rss = startRSSSampler(cmd.Process.Pid, 100*time.Millisecond)
	p.cpu0 = markCPU(cmd.Process.Pid, l.dbPID)
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.kill()
		return nil, err
	}
	if l.db != nil {
		p.queries = startQuerySampler(l.db.DB, l.db.Name, 100*time.Millisecond)
	}
	return p, nil
}

// waitReady polls /readyz.
func (p *sidecarProc) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("sidecar %s exited before it was ready (%v):\n%s", p.name, p.waitErr, tail(p.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sidecar %s not ready after %s:\n%s", p.name, timeout, tail(p.logPath, 20))
		}
	}
}

// alive reports whether the process is still running.
func (p *sidecarProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// pid is the child's process id.
func (p *sidecarProc) pid() int { return p.cmd.Process.Pid }

// stop reads the process's memory and CPU, sends SIGTERM and checks that it
// exits 0 within timeout.
func (p *sidecarProc) stop(timeout time.Duration) (stopResult, error) {
	var r stopResult
	r.CPU = markCPU(p.pid(), p.dbPID).since(p.cpu0)
	r.PeakRSS, r.HWM = p.rss.finish()
	if p.queries != nil {
		r.DB = p.queries.finish()
	}
	start := time.Now()
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		return r, fmt.Errorf("sidecar %s did not exit within %s of SIGTERM", p.name, timeout)
	}
	r.StopSecs = time.Since(start).Seconds()
	r.ExitCode = p.cmd.ProcessState.ExitCode()
	r.Log = logSummary(p.logPath)
	if p.waitErr != nil {
		return r, fmt.Errorf("sidecar %s: %w:\n%s", p.name, p.waitErr, tail(p.logPath, 20))
	}
	return r, nil
}

// kill ends the process at once (setup failures and timeouts only).
func (p *sidecarProc) kill() {
	if p.alive() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.rss.finish()
	if p.queries != nil {
		p.queries.finish()
	}
}

// freeLoopbackAddr returns 127.0.0.1:<a free port>.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// envList turns the map into KEY=VALUE lines, sorted.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logSummary counts the sidecar's log lines by level and message (the
// sidecar logs JSON at SIDECAR_LOG_LEVEL=warn, so these are problems).
func logSummary(path string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		line := sc.Bytes()
		if err := json.Unmarshal(line, &rec); err != nil || rec.Level == "" {
			s := string(line)
			if len(s) > 80 {
				s = s[:80]
			}
			out["TEXT "+s]++
			continue
		}
		out[rec.Level+" "+rec.Msg]++
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// errSidecarDied is returned when the sidecar exits during a phase.
var errSidecarDied = errors.New("the sidecar exited during the phase")
