// Command sidecar runs Mautic's Marketing Messages outside Mautic: it takes
// the campaign "Send a webhook" call, picks the contact's channel, sends it
// and writes back the rows Mautic writes. See README.md and DESIGN.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"
)

// Set by the linker (see Makefile).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "sidecar:", err)
		}
		os.Exit(1)
	}
}

// errReported means the command already printed why it failed.
var errReported = errors.New("reported")

const usage = `usage: sidecar <command> [flags]

commands:
  serve                             HTTP API, dispatch workers and message_queue worker
  migrate up | migrate status       the sidecar's own tables (sidecar_*)
  check                             check the database, schema, senders and keys
  route --contact ID --message ID   print the routing decision and its trace; sends nothing
  demo [--once]                     the embedded demo (see README.md)
  version                           version, commit, Go version
  probe [--url URL]                 GET a health endpoint, exit 0 on 2xx (container healthchecks)

Every environment variable of the configuration has a flag: SIDECAR_WORKERS is
--sidecar-workers. Run "sidecar <command> -h" for the list.
`

// run is the whole program; main only adds the process around it.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "sidecar %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "serve":
		return runServe(ctx, rest, environ, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, environ, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, environ, stdout, stderr)
	case "route":
		return runRoute(ctx, rest, environ, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, environ, stdout, stderr)
	case "probe":
		return runProbe(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parseCommand prepares a flag set with the configuration flags plus the
// command's own (added by extra), parses args and loads the configuration.
func parseCommand(name string, args, environ []string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("sidecar "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if extra != nil {
		extra(fs)
	}
	registerConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, fs, errReported
		}
		return Config{}, fs, err
	}
	cfg, err := loadConfig(environ, fs)
	if err != nil {
		return cfg, fs, err
	}
	return cfg, fs, nil
}

// newLogger builds the process logger from SIDECAR_LOG_LEVEL/FORMAT.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(cfg.LogLevel) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
