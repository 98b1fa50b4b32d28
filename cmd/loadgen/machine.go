package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// machine describes where the numbers were measured.
type machine struct {
	CPUs           int               `json:"nproc"`
	CPUModel       string            `json:"cpu_model"`
	MemTotal       string            `json:"mem_total"`
	Kernel         string            `json:"kernel"`
	LoadAvg        string            `json:"loadavg_at_start"`
	GoVersion      string            `json:"go_version"`
	SidecarVersion string            `json:"sidecar_version"`
	DBVersion      string            `json:"db_version"`
	DBSettings     map[string]string `json:"db_settings"`
	DBCPUMeasured  bool              `json:"db_cpu_measured"`
}

// describeMachine reads /proc and asks the sidecar binary for its version.
func describeMachine(ctx context.Context, sidecarBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "MemTotal:") {
				m.MemTotal = strings.Join(strings.Fields(strings.TrimPrefix(sc.Text(), "MemTotal:")), " ")
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if sidecarBin != "" {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(cctx, sidecarBin, "version").Output(); err == nil {
			m.SidecarVersion = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	return m
}

// maskedEnv lists the sidecar's environment with secrets masked.
func maskedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if secretKey(k) {
			v = "xxxxx"
		}
		if k == "MAUTIC_DB_DSN" {
			if i := strings.Index(v, "@"); i > 0 {
				if j := strings.Index(v[:i], ":"); j >= 0 {
					v = v[:j] + ":xxxxx" + v[i:]
				}
			}
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func secretKey(k string) bool {
	for _, s := range []string{"TOKEN", "SECRET", "PASSWORD", "API_KEY"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
