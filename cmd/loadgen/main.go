// Command loadgen measures the sidecar against the performance targets of
// issue #6, each next to a floor the database allows, measured in the same
// run:
//
//	go run ./cmd/loadgen [flags]      (or `make bench`, `make bench-full`)
//
// It creates a throwaway database (--db, default sidecar_bench; it refuses
// any database it did not create, recognized by its loadgen_marker table),
// loads Mautic's schema and the sidecar's migrations, seeds a dataset, runs
// bin/sidecar as a child process (`sidecar serve` on 127.0.0.1 with the
// sandbox's Twilio, OneSignal and SMTP stand-ins running inside loadgen),
// and prints a table: value, floor, ratio, target, PASS/FAIL.
//
// Dataset (--contacts, --seed): contacts with an email (85%), a mobile
// (55%) or else a landline (10%), web push (30%) and mobile push (5%) ids;
// half of them with lead_frequencyrules rows for email and/or SMS
// (preferred flags, DAY/WEEK/MONTH limits on 55% of rules, a few zero
// limits, 4% paused now and 3% paused in the past); 5% with a DNC row; and
// sends in the last 30 days for 60% (email), 25% (SMS) and 10% (web push).
// One marketing message with email, SMS and web push content, all
// published, and a campaign with its event.
//
// Phases (--phases, in this order):
//
//	floor   the insert floor: bare single-row INSERT commits per second on
//	        --clients connections (autocommit, scratch table); and the
//	        per-contact floor: contacts per second with one transaction per
//	        contact holding the minimal statements (read the contact, its
//	        rules, its DNC rows, count its email sends in the window, insert
//	        an email_stats row, update its dispatch row), --clients
//	        connections. Each runs --floor-time.
//	intake  an intake-only sidecar (SIDECAR_WORKERS=0); --clients keep-alive
//	        clients POST the webhook as Mautic does (form-encoded, bearer
//	        token, contact_id, message_id, campaign_id, event_id and a unique
//	        idempotency_key); counts 200s per second and their latency.
//	        After the floor phase, the insert floor is measured again right
//	        after the load, and the intake's ratio is to the mean of both.
//	e2e     one accepted dispatch per contact written directly (rows as the
//	        intake writes them), then a sidecar with workers routes and sends
//	        them; times accepted → sent/queued/failed by polling the states.
//	queue   --queue-rows due message_queue rows as Mautic queues them, then
//	        a sidecar drains them; times until none is due.
//	memory  --memory-backlog webhook calls to an intake-only sidecar, then a
//	        sidecar with workers routes that backlog; the peak RSS (VmHWM) of
//	        both processes.
//	plans   adds the history a sidecar leaves (routed dispatches next to a due
//	        backlog, a drained message_queue, lock rows, companies), runs the
//	        hot reads of a batch of --batch (default 64) contacts and EXPLAINs
//	        them (internal/plans); prints a Markdown table, and fails when a
//	        read scans a table of more than 1000 rows or a claim sorts.
//	decide  `go test -bench BenchmarkDecide ./bridge/` (needs the source tree).
//
// Sidecar settings: --workers, --batch, --env KEY=VALUE, and any SIDECAR_*
// or GO* variable in loadgen's environment are passed to the sidecar.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds a sidecar's graceful stop (its SIDECAR_SHUTDOWN_TIMEOUT
// is 15s by default).
const stopTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errTargetMissed):
		os.Exit(3)
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// errTargetMissed is returned with --strict when a figure fails its target.
var errTargetMissed = errors.New("a target was missed")

// runner holds what the phases share.
type runner struct {
	cfg    config
	stderr io.Writer
	db     *benchDB
	ds     *dataset
	prov   *providers
	launch *launcher
	runID  string
}

func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	rep := &report{Started: start.UTC(), Config: map[string]any{
		"contacts": cfg.Contacts, "intake": cfg.Intake.String(), "queue_rows": cfg.QueueRows, "memory_backlog": cfg.MemoryBacklog,
		"clients": cfg.Clients, "floor_time": cfg.FloorFor.String(), "phases": cfg.Phases, "database": cfg.Database, "prefix": cfg.Prefix,
		"seed": cfg.Seed,
	}}
	sidecarBin := ""
	if cfg.usesSidecar() {
		sidecarBin = cfg.Sidecar
	}
	rep.Machine = describeMachine(ctx, sidecarBin)
	if load, err := strconv.ParseFloat(strings.Fields(rep.Machine.LoadAvg + " 0")[0], 64); err == nil && load > float64(rep.Machine.CPUs)/2 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the machine was busy when the run started (load average %s on %d CPUs): "+
			"the numbers may be lower than on a quiet machine", rep.Machine.LoadAvg, rep.Machine.CPUs))
	}
	r := &runner{cfg: cfg, stderr: stderr, runID: randomHex(4)}
	if cfg.needsDatabase() {
		cleanup, err := r.setup(ctx, rep)
		defer cleanup()
		if err != nil {
			return err
		}
		r.runPhases(ctx, rep)
	}
	if cfg.has(phaseDecide) && ctx.Err() == nil {
		fmt.Fprintln(stderr, "decide: go test -bench BenchmarkDecide ./bridge/")
		if rep.Decide, err = runDecide(ctx, cfg.Repo); err != nil {
			rep.Errors = append(rep.Errors, "decide: "+err.Error())
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Figures = rep.figures()
	if err := rep.render(stdout); err != nil {
		return err
	}
	if cfg.JSON != "" {
		if err := rep.writeJSON(cfg.JSON); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d phase(s) failed: %s", len(rep.Errors), rep.Errors[0])
	}
	if cfg.Strict {
		for _, f := range rep.Figures {
			if f.Pass != nil && !*f.Pass {
				return errTargetMissed
			}
		}
	}
	return nil
}

// setup creates and seeds the database and starts the providers. The
// returned cleanup runs even when setup fails.
func (r *runner) setup(ctx context.Context, rep *report) (func(), error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fmt.Fprintf(r.stderr, "database %s: creating (Mautic schema, sidecar migrations)\n", r.cfg.Database)
	db, err := createBenchDB(ctx, r.cfg.ServerDSN, r.cfg.Database, r.cfg.Prefix)
	if err != nil {
		return cleanup, err
	}
	r.db = db
	cleanups = append(cleanups, func() {
		if !r.cfg.Keep {
			if err := db.drop(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(r.stderr, "loadgen:", err)
			}
		} else {
			fmt.Fprintf(r.stderr, "database %s kept (--keep)\n", db.Name)
		}
		db.Close()
	})
	if rep.Machine.DBVersion, rep.Machine.DBSettings, err = db.serverVersion(ctx); err != nil {
		return cleanup, err
	}
	if v := rep.Machine.DBSettings["innodb_flush_log_at_trx_commit"]; v != "" && v != "1" {
		rep.Warnings = append(rep.Warnings, "innodb_flush_log_at_trx_commit="+v+": commits are not flushed to disk, so every rate here is higher than on a durable setup")
	}
	dbPID := r.localServerPID(ctx)
	db.ServerPID = dbPID
	rep.Machine.DBCPUMeasured = dbPID > 0
	r.ds, err = seedDataset(ctx, db, r.cfg.Contacts, r.cfg.Seed, newProgress(r.stderr, "seeding", int64(r.cfg.Contacts), "contacts"))
	if err != nil {
		return cleanup, err
	}
	rep.Dataset = r.ds
	if !r.cfg.usesSidecar() {
		return cleanup, nil
	}
	if r.prov, err = startProviders(); err != nil {
		return cleanup, err
	}
	cleanups = append(cleanups, r.prov.Close)
	logDir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return cleanup, fmt.Errorf("log directory: %w", err)
	}
	fmt.Fprintf(r.stderr, "sidecar logs in %s\n", logDir)
	bin, err := filepath.Abs(r.cfg.Sidecar)
	if err != nil {
		return cleanup, fmt.Errorf("sidecar binary: %w", err)
	}
	r.launch = &launcher{db: r.db, bin: bin, env: r.sidecarEnv(os.Environ()), logDir: logDir, token: randomHex(24), dbPID: dbPID}
	r.launch.env["SIDECAR_TOKEN"] = r.launch.token
	rep.Sidecar = maskedEnv(r.launch.env)
	return cleanup, nil
}

// sidecarEnv assembles the sidecar's environment, later sources winning:
// loadgen's defaults, SIDECAR_* and GO* variables of loadgen's environment,
// --workers/--batch, the providers and Mautic's URL and key, --env, and the
// database (SIDECAR_TOKEN and SIDECAR_LISTEN are set by the launcher).
func (r *runner) sidecarEnv(environ []string) map[string]string {
	env := map[string]string{"SIDECAR_LOG_LEVEL": "warn", "SIDECAR_MAX_BACKLOG": "10000000"}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case k == "SIDECAR_TEST_PREFIX" || strings.HasPrefix(k, "SIDECAR_PRIVATE_MARIADB"):
		case strings.HasPrefix(k, "SIDECAR_"), k == "GOGC", k == "GOMEMLIMIT", k == "GOMAXPROCS", k == "GODEBUG":
			env[k] = v
		}
	}
	if r.cfg.Workers.Given {
		env["SIDECAR_WORKERS"] = strconv.Itoa(r.cfg.Workers.V)
	}
	if r.cfg.Batch.Given {
		env["SIDECAR_BATCH_SIZE"] = strconv.Itoa(r.cfg.Batch.V)
	}
	for k, v := range r.prov.env() {
		env[k] = v
	}
	env["MAUTIC_SITE_URL"] = "https://mautic.example.test"
	env["MAUTIC_SECRET_KEY"] = randomHex(32)
	for _, kv := range r.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env["MAUTIC_DB_DSN"] = r.db.DSN
	env["MAUTIC_TABLE_PREFIX"] = r.db.Prefix
	return env
}

// runPhases runs the selected database phases; a failed phase is reported
// and the next one still runs.
func (r *runner) runPhases(ctx context.Context, rep *report) {
	fail := func(phase string, err error) {
		if err != nil {
			rep.Errors = append(rep.Errors, phase+": "+err.Error())
			fmt.Fprintf(r.stderr, "%s: %v\n", phase, err)
		}
	}
	var err error
	for _, phase := range r.cfg.Phases {
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(r.stderr, "== %s\n", phase)
		switch phase {
		case phaseFloor:
			ph := &floorPhase{}
			if ph.Insert, err = insertFloor(ctx, r.db, r.cfg.Clients, r.cfg.FloorFor, newProgress(r.stderr, "insert floor", 0, "commits")); err != nil {
				fail(phase, err)
				continue
			}
			ph.Contact, err = contactFloor(ctx, r.db, r.ds, r.cfg.Clients, r.cfg.FloorFor, newProgress(r.stderr, "contact floor", 0, "contacts"))
			fail(phase, err)
			if err == nil {
				rep.Floor = ph
			}
		case phaseIntake:
			rep.Intake, err = r.runIntakePhase(ctx)
			fail(phase, err)
			if err == nil && rep.Floor != nil {
				// The floor again, right after: the intake's ratio is to
				// the mean of the floors before and after it, so that the
				// machine's drift between the two measurements (this
				// machine is shared) weighs less on it.
				after, ferr := insertFloor(ctx, r.db, r.cfg.Clients, r.cfg.FloorFor, newProgress(r.stderr, "insert floor (after)", 0, "commits"))
				fail("insert floor after the intake", ferr)
				if ferr == nil {
					rep.Intake.FloorAfter = &after
				}
			}
		case phaseE2E:
			rep.E2E, err = r.runE2E(ctx)
			fail(phase, err)
			if err == nil {
				rep.Warnings = append(rep.Warnings, deliveryCheck(phase, rep.E2E.Delivered, rep.E2E.Outcomes)...)
			}
		case phaseQueue:
			rep.Queue, err = r.runQueue(ctx)
			fail(phase, err)
			if err == nil {
				rep.Warnings = append(rep.Warnings, deliveryCheck(phase, rep.Queue.Delivered, rep.Queue.Outcomes)...)
			}
		case phaseMemory:
			rep.Memory, err = r.runMemory(ctx)
			fail(phase, err)
			if err == nil {
				rep.Warnings = append(rep.Warnings, deliveryCheck(phase, rep.Memory.Delivered, rep.Memory.Outcomes)...)
			}
		case phasePlans:
			rep.Plans, err = r.runPlans(ctx)
			fail(phase, err)
		}
	}
}

// localServerPID finds the database server's process when it runs on this
// machine, to report its CPU; 0 otherwise.
func (r *runner) localServerPID(ctx context.Context) int {
	host, _, err := net.SplitHostPort(r.db.server.Addr)
	if err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
		return 0
	}
	var pidFile, dataDir string
	if err := r.db.DB.QueryRowxContext(ctx, "SELECT @@pid_file, @@datadir").Scan(&pidFile, &dataDir); err != nil {
		return 0
	}
	if !filepath.IsAbs(pidFile) {
		pidFile = filepath.Join(dataDir, pidFile)
	}
	return serverPID(pidFile)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
