package faults

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver the sidecar uses
)

// mariaDB is a private mariadbd on a temporary data directory and a free
// loopback port, which a test may kill and start again: never the shared
// test server.
type mariaDB struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startMariaDB installs a fresh data directory and starts mariadbd on it.
// It fails (never skips) when mariadb-server is not installed:
// scripts/with-mariadb.sh installs it in CI.
func startMariaDB(t testing.TB) *mariaDB {
	t.Helper()
	bin := lookPath("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
	install := lookPath("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db")
	if bin == "" || install == "" {
		t.Fatalf("the database outage test runs its own mariadbd: install mariadb-server (scripts/with-mariadb.sh does as root)")
	}
	dir, err := os.MkdirTemp("", "sidecar-faults-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	who := "root"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	out, err := exec.Command(install, "--no-defaults", "--datadir="+filepath.Join(dir, "data"), "--user="+who,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", install, err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &mariaDB{t: t, bin: bin, dir: dir, port: port}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// ServerDSN connects to the server without a database.
func (m *mariaDB) ServerDSN() string { return fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port) }

// start runs mariadbd on the data directory and port (the same on every
// start) and waits until it answers.
func (m *mariaDB) start() {
	m.t.Helper()
	who := "root"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	cmd := exec.Command(m.bin, "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"), "--socket="+filepath.Join(m.dir, "sock"),
		"--port="+strconv.Itoa(m.port), "--bind-address=127.0.0.1", "--skip-log-bin", "--user="+who,
		"--pid-file="+filepath.Join(m.dir, "pid"), "--innodb-buffer-pool-size=128M", "--max-connections=500",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci", "--log-error="+filepath.Join(m.dir, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mariadbd: %v", err)
	}
	m.cmd, m.exited = cmd, make(chan struct{})
	go func(done chan struct{}) {
		m.waitErr = cmd.Wait()
		close(done)
	}(m.exited)
	db, err := sql.Open("mysql", m.ServerDSN())
	if err != nil {
		m.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for db.Ping() != nil {
		select {
		case <-m.exited:
			log, _ := os.ReadFile(filepath.Join(m.dir, "error.log"))
			m.t.Fatalf("mariadbd exited (%v):\n%s", m.waitErr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mariadbd does not answer on port %d", m.port)
		}
	}
}

// kill ends mariadbd with SIGKILL: a crash, connections refused until the
// next start, and InnoDB's recovery on that start.
func (m *mariaDB) kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}

// stop shuts the server down cleanly at the end of the test.
func (m *mariaDB) stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		m.kill()
	}
}
