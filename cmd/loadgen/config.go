package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/mautic"
)

// The phases, in the order they run.
const (
	phaseFloor  = "floor"
	phaseIntake = "intake"
	phaseE2E    = "e2e"
	phaseQueue  = "queue"
	phaseMemory = "memory"
	phasePlans  = "plans"
	phaseDecide = "decide"
)

var allPhases = []string{phaseFloor, phaseIntake, phaseE2E, phaseQueue, phaseMemory, phasePlans, phaseDecide}

// config is the command line.
type config struct {
	ServerDSN string // server DSN, no database
	Database  string
	Prefix    string
	Seed      uint64

	Contacts      int
	E2E           int    // dispatches of the e2e phase (default Contacts)
	Intake        amount // requests, or a duration
	QueueRows     int
	MemoryBacklog int
	Clients       int
	FloorFor      time.Duration
	PhaseTimeout  time.Duration
	Poll          time.Duration

	Sidecar string
	Workers optionalInt
	Batch   optionalInt
	Env     []string // KEY=VALUE for the sidecar

	Phases []string
	Keep   bool
	Strict bool
	JSON   string
	// CPUProfile profiles loadgen itself (its load clients and the sandbox
	// providers), to check that they are not what limits a run.
	CPUProfile string
	Repo       string // module root for the decide phase; found from the working directory when empty
}

// has reports whether phase p is selected.
func (c config) has(p string) bool {
	for _, q := range c.Phases {
		if q == p {
			return true
		}
	}
	return false
}

// needsDatabase reports whether any selected phase uses the database.
func (c config) needsDatabase() bool {
	for _, p := range c.Phases {
		if p != phaseDecide {
			return true
		}
	}
	return false
}

// amount is a number of requests or a duration ("20000" or "30s").
type amount struct {
	N   int
	For time.Duration
}

func (a *amount) String() string {
	if a.For > 0 {
		return a.For.String()
	}
	return strconv.Itoa(a.N)
}

func (a *amount) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 {
			return errors.New("must be at least 1")
		}
		*a = amount{N: n}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q is neither a count nor a positive duration", s)
	}
	*a = amount{For: d}
	return nil
}

// optionalInt is an int flag that remembers whether it was given.
type optionalInt struct {
	V     int
	Given bool
}

func (o *optionalInt) String() string {
	if o == nil || !o.Given {
		return ""
	}
	return strconv.Itoa(o.V)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a non-negative integer", s)
	}
	*o = optionalInt{V: n, Given: true}
	return nil
}

type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	if !strings.Contains(s, "=") {
		return fmt.Errorf("%q is not KEY=VALUE", s)
	}
	*f.l = append(*f.l, s)
	return nil
}

var databaseName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// parseConfig reads the flags. getenv supplies the defaults taken from the
// environment (MYSQL_TEST_DSN).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defDSN := strings.TrimSpace(getenv("MYSQL_TEST_DSN"))
	if defDSN == "" {
		defDSN = "root@tcp(127.0.0.1:3306)/"
	}
	fs.StringVar(&c.ServerDSN, "dsn", defDSN, "MariaDB/MySQL server DSN without a database (default $MYSQL_TEST_DSN)")
	fs.StringVar(&c.Database, "db", "sidecar_bench", "database to create; only a database loadgen created (it holds a loadgen_marker table) is ever dropped")
	fs.StringVar(&c.Prefix, "prefix", "", "Mautic table prefix")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the generated dataset")
	fs.IntVar(&c.Contacts, "contacts", 100000, "contacts in the dataset (also the e2e backlog: one dispatch per contact)")
	fs.IntVar(&c.E2E, "e2e", 0, "dispatches routed by the e2e phase, one per contact, spread evenly over the dataset (default: --contacts)")
	fs.Var(&c.Intake, "intake", "intake requests (a count, default --contacts) or a duration such as 30s")
	fs.IntVar(&c.QueueRows, "queue-rows", 20000, "due message_queue rows for the queue phase (the plans phase: sent rows, and 2% as many pending)")
	fs.IntVar(&c.MemoryBacklog, "memory-backlog", 100000, "dispatches taken in (then routed) by the memory phase")
	fs.IntVar(&c.Clients, "clients", 32, "concurrent HTTP clients and floor connections")
	fs.DurationVar(&c.FloorFor, "floor-time", 5*time.Second, "duration of each floor measurement")
	fs.DurationVar(&c.PhaseTimeout, "phase-timeout", 10*time.Minute, "bound on one phase's wait for the sidecar")
	fs.DurationVar(&c.Poll, "poll", 250*time.Millisecond, "how often the database is polled for progress")
	fs.StringVar(&c.Sidecar, "sidecar", "bin/sidecar", "sidecar binary")
	fs.Var(&c.Workers, "workers", "SIDECAR_WORKERS of the routing phases (default: the sidecar's)")
	fs.Var(&c.Batch, "batch", "SIDECAR_BATCH_SIZE, and the plans phase's batch (default: the sidecar's, 64)")
	fs.Var(listFlag{&c.Env}, "env", "KEY=VALUE passed to the sidecar (repeatable); SIDECAR_* and GO* variables of loadgen's environment are passed too")
	phases := fs.String("phases", "all", "comma-separated phases: "+strings.Join(allPhases, ",")+" (all: every one)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the database afterwards")
	fs.BoolVar(&c.Strict, "strict", false, "exit with status 3 when a figure misses its target")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of loadgen itself (clients and providers) to this file")
	fs.StringVar(&c.Repo, "repo", "", "module root for the decide phase (default: found from the working directory)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loadgen [flags]\n\nMeasures the sidecar against the targets of issue #6 (see cmd/loadgen/main.go).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	intakeGiven := false
	fs.Visit(func(f *flag.Flag) { intakeGiven = intakeGiven || f.Name == "intake" })
	if !intakeGiven {
		c.Intake = amount{N: c.Contacts}
	}
	if c.E2E == 0 {
		c.E2E = c.Contacts
	}
	var err error
	if c.Phases, err = parsePhases(*phases); err != nil {
		return c, err
	}
	return c, c.validate()
}

func parsePhases(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return append([]string(nil), allPhases...), nil
	}
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		known := false
		for _, q := range allPhases {
			known = known || q == p
		}
		if !known {
			return nil, fmt.Errorf("unknown phase %q (phases: %s)", p, strings.Join(allPhases, ","))
		}
		want[p] = true
	}
	var out []string
	for _, p := range allPhases {
		if want[p] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no phase selected")
	}
	return out, nil
}

func (c config) validate() error {
	switch {
	case !databaseName.MatchString(c.Database):
		return fmt.Errorf("--db %q: letters, digits and _ only", c.Database)
	case c.Contacts < 1:
		return errors.New("--contacts must be at least 1")
	case c.E2E < 1 || c.E2E > c.Contacts:
		return fmt.Errorf("--e2e %d: between 1 and --contacts (%d)", c.E2E, c.Contacts)
	case c.Clients < 1:
		return errors.New("--clients must be at least 1")
	case c.QueueRows < 0 || c.MemoryBacklog < 0:
		return errors.New("--queue-rows and --memory-backlog must not be negative")
	case c.FloorFor <= 0 || c.PhaseTimeout <= 0 || c.Poll <= 0:
		return errors.New("--floor-time, --phase-timeout and --poll must be positive")
	}
	if err := mautic.ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("--prefix: %w", err)
	}
	if c.usesSidecar() {
		if _, err := os.Stat(c.Sidecar); err != nil {
			return fmt.Errorf("--sidecar %s: %w (run `make build`)", c.Sidecar, err)
		}
	}
	return nil
}

// usesSidecar reports whether a selected phase runs the sidecar.
func (c config) usesSidecar() bool {
	return c.has(phaseIntake) || c.has(phaseE2E) || c.has(phaseQueue) || c.has(phaseMemory)
}
