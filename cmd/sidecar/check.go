package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// runCheck is `sidecar check`: a report of everything serve depends on.
// It exits 1 (returns an error) when a problem would stop serve from working.
func runCheck(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg, _, err := parseCommand("check", args, environ, stderr, nil)
	if err != nil {
		return err
	}
	var blocking []string
	block := func(format string, a ...any) { blocking = append(blocking, fmt.Sprintf(format, a...)) }
	line := func(k, format string, a ...any) { fmt.Fprintf(stdout, "%-15s %s\n", k, fmt.Sprintf(format, a...)) }

	fmt.Fprintln(stdout, "sidecar check")
	db, err := mautic.Open(ctx, mautic.Config{DSN: cfg.dsn(), Prefix: cfg.TablePrefix, MaxOpenConns: 4})
	if err != nil {
		line("database", "%s: %v", mautic.RedactDSN(cfg.dsn()), err)
		fmt.Fprintln(stdout, "result: 1 blocking problem")
		return errReported
	}
	defer db.Close()
	line("database", "%s: connected", mautic.RedactDSN(cfg.dsn()))

	if si, err := db.Server(ctx); err != nil {
		line("server", "%v", err)
		block("server version unreadable")
	} else {
		sl := "yes"
		if !si.SkipLocked() {
			sl = "NO (needs MariaDB 10.6+ or MySQL 8.0.1+)"
			block("the server does not support FOR UPDATE SKIP LOCKED")
		}
		line("server", "%s; SKIP LOCKED supported: %s", si, sl)
	}

	problems, err := db.CheckSchema(ctx)
	if err != nil {
		line("mautic schema", "%v", err)
		block("schema unreadable")
	} else {
		required := 0
		for _, p := range problems {
			if !p.Optional {
				required++
			}
		}
		switch {
		case len(problems) == 0:
			line("mautic schema", "prefix %q: all %d tables and their columns present", cfg.TablePrefix,
				len(mautic.RequiredColumns)+len(mautic.OptionalTables))
		default:
			line("mautic schema", "prefix %q:", cfg.TablePrefix)
			for _, p := range problems {
				fmt.Fprintf(stdout, "%-15s   %s\n", "", p)
			}
		}
		if required > 0 {
			block("%d missing Mautic tables or columns (is MAUTIC_TABLE_PREFIX right?)", required)
		}
	}

	if st, err := migrations.Read(db.DB.DB, cfg.TablePrefix); err != nil {
		line("sidecar schema", "%v", err)
		block("sidecar schema unreadable")
	} else if !st.Current() {
		line("sidecar schema", "%s: %s", st, st.Advice())
		block("sidecar schema not current")
	} else {
		line("sidecar schema", "%s: current", st)
	}

	set, err := buildSenders(ctx, cfg, db, nil, nil)
	if err != nil {
		line("senders", "%v", err)
		block("senders: %v", err)
	} else {
		defer set.Close()
		live := 0
		for i, s := range set.Status {
			k := ""
			if i == 0 {
				k = "senders"
			}
			state := "not configured"
			if s.Live {
				state = "live"
				live++
			}
			fmt.Fprintf(stdout, "%-15s %-20s %s: %s\n", k, s.Channel, state, s.Detail)
		}
		if live == 0 {
			block("no sender is configured: nothing can be sent")
		}
		for _, k := range set.KeyReports {
			line("integration", "%s", k)
		}
	}

	if cfg.SiteURL == "" {
		line("warning", "MAUTIC_SITE_URL is not set: emails carry no tracking pixel, unsubscribe or web view links")
	}
	if cfg.Token == "" {
		line("warning", "SIDECAR_TOKEN is not set: serve refuses to start without it")
	}
	if len(blocking) == 0 {
		fmt.Fprintln(stdout, "result: ok")
		return nil
	}
	fmt.Fprintf(stdout, "result: %d blocking problem(s): %s\n", len(blocking), strings.Join(blocking, "; "))
	return errReported
}
