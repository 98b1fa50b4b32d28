package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times (100 on
// every architecture Go supports).
const clockTick = 10 * time.Millisecond

// procMemory returns VmRSS and VmHWM (peak RSS) of pid, in bytes.
func procMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			rss = kB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			hwm = kB(line)
		}
	}
	return rss, hwm, sc.Err()
}

// kB parses "Name:   1234 kB" into bytes.
func kB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * 1024
}

// procCPU returns the user plus system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of /proc/<pid>/stat;
// the command name in field 2 may contain spaces, so fields are counted
// after its closing parenthesis.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	return time.Duration(u+s) * clockTick, nil
}

// selfCPU returns the CPU time loadgen itself has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssSampler samples a process's resident memory until stopped.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	peak int64 // highest VmRSS sample
	hwm  int64 // latest VmHWM
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	rss, hwm, err := procMemory(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peak = max(s.peak, rss)
	s.hwm = max(s.hwm, hwm)
}

// finish takes a last sample and stops: it returns the highest VmRSS seen
// and the kernel's peak (VmHWM), in bytes. Call it before the process exits.
func (s *rssSampler) finish() (peak, hwm int64) {
	s.once.Do(func() {
		s.sample()
		close(s.stop)
	})
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.hwm
}

// cpuUse is the CPU the processes used during a phase.
type cpuUse struct {
	Wall    float64 `json:"wall_s"`
	Sidecar float64 `json:"sidecar_cpu_s"`
	MariaDB float64 `json:"mariadb_cpu_s"` // -1: not measured (server not local or not readable)
	Loadgen float64 `json:"loadgen_cpu_s"` // loadgen and its sandbox providers
	// Machine is the CPU every process of the machine used; Other is what
	// was not ours (other work competing for the cores), -1 when unknown.
	Machine float64 `json:"machine_cpu_s"`
	Other   float64 `json:"other_cpu_s"`
}

// String prints the cores each process kept busy on average.
func (c cpuUse) String() string {
	if c.Wall <= 0 {
		return ""
	}
	var parts []string
	if c.Sidecar > 0 {
		parts = append(parts, fmt.Sprintf("sidecar %.2f", c.Sidecar/c.Wall))
	}
	if c.MariaDB >= 0 {
		parts = append(parts, fmt.Sprintf("mariadb %.2f", c.MariaDB/c.Wall))
	}
	parts = append(parts, fmt.Sprintf("loadgen+providers %.2f", c.Loadgen/c.Wall))
	s := fmt.Sprintf("cores busy over %.1fs: %s", c.Wall, strings.Join(parts, ", "))
	if c.Other >= 0 {
		s += fmt.Sprintf(", other processes %.2f", c.Other/c.Wall)
	}
	return s
}

// perUnit prints the CPU time each process spent per unit of work (n units)
// and the rate those costs allow on cpus otherwise idle cores: with the
// stand-in providers, and without them (they run elsewhere in production).
func (c cpuUse) perUnit(n int64, unit string, cpus int) string {
	if n <= 0 || c.Wall <= 0 {
		return ""
	}
	us := func(sec float64) float64 { return sec / float64(n) * 1e6 }
	var parts []string
	if c.Sidecar > 0 {
		parts = append(parts, fmt.Sprintf("sidecar %.0f µs", us(c.Sidecar)))
	}
	total := c.Sidecar
	if c.MariaDB >= 0 {
		parts = append(parts, fmt.Sprintf("mariadb %.0f µs", us(c.MariaDB)))
		total += c.MariaDB
	}
	parts = append(parts, fmt.Sprintf("loadgen+providers %.0f µs", us(c.Loadgen)))
	s := fmt.Sprintf("CPU per %s: %s", unit, strings.Join(parts, ", "))
	if c.MariaDB >= 0 && total > 0 {
		ceiling := float64(cpus) * float64(n) / (total + c.Loadgen)
		without := float64(cpus) * float64(n) / total
		s += fmt.Sprintf("; %d idle cores would allow about %s/s (%s/s with the providers elsewhere)", cpus, num(ceiling), num(without))
	}
	return s
}

// cpuMark is a reading of the processes' CPU clocks.
type cpuMark struct {
	at                time.Time
	sidecar, db, self time.Duration
	machine           time.Duration
	dbOK, machineOK   bool
}

// markCPU reads the clocks; sidecarPID or dbPID 0 are skipped.
func markCPU(sidecarPID, dbPID int) cpuMark {
	m := cpuMark{at: time.Now(), self: selfCPU()}
	if sidecarPID > 0 {
		m.sidecar, _ = procCPU(sidecarPID)
	}
	if dbPID > 0 {
		var err error
		m.db, err = procCPU(dbPID)
		m.dbOK = err == nil
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		m.machine, err = parseMachineCPU(b)
		m.machineOK = err == nil
	}
	return m
}

// since returns the use between from and m.
func (m cpuMark) since(from cpuMark) cpuUse {
	u := cpuUse{Wall: m.at.Sub(from.at).Seconds(), Sidecar: (m.sidecar - from.sidecar).Seconds(),
		Loadgen: (m.self - from.self).Seconds(), MariaDB: -1, Machine: -1, Other: -1}
	if m.dbOK && from.dbOK {
		u.MariaDB = (m.db - from.db).Seconds()
	}
	if m.machineOK && from.machineOK && u.MariaDB >= 0 {
		u.Machine = (m.machine - from.machine).Seconds()
		u.Other = max(0, u.Machine-u.Sidecar-u.MariaDB-u.Loadgen)
	}
	return u
}

// parseMachineCPU returns the busy time of all CPUs from /proc/stat's
// "cpu" line: everything but idle and iowait (guest time is already in
// user).
func parseMachineCPU(stat []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat %q", line)
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/stat %q", line)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * clockTick, nil
}

// serverPID finds the local MariaDB/MySQL server's process from its pid
// file; 0 when the server is not on this machine or not readable.
func serverPID(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return 0
	}
	name := strings.TrimSpace(string(comm))
	if name != "mariadbd" && name != "mysqld" {
		return 0
	}
	return pid
}
