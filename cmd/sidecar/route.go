package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mautic-mm/sidecar/bridge"
	"github.com/mautic-mm/sidecar/mautic"
)

// runRoute is `sidecar route --contact ID --message ID`: the decision and
// its trace now; it sends and writes nothing.
func runRoute(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	var contact, message int64
	var asJSON bool
	cfg, _, err := parseCommand("route", args, environ, stderr, func(fs *flag.FlagSet) {
		fs.Int64Var(&contact, "contact", 0, "contact id (leads.id)")
		fs.Int64Var(&message, "message", 0, "marketing message id (messages.id)")
		fs.BoolVar(&asJSON, "json", false, "print JSON, as GET /v1/route answers")
	})
	if err != nil {
		return err
	}
	if contact <= 0 || message <= 0 {
		return errors.New("route needs --contact ID and --message ID (positive integers)")
	}
	log := slog.New(slog.DiscardHandler)
	db, err := mautic.Open(ctx, mautic.Config{DSN: cfg.dsn(), Prefix: cfg.TablePrefix, MaxOpenConns: 4})
	if err != nil {
		return err
	}
	defer db.Close()
	set, err := buildSenders(ctx, cfg, db, log, nil)
	if err != nil {
		return err
	}
	defer set.Close()
	app := bridge.New(bridge.Config{Pipeline: bridge.Options{FrequencyDefaults: cfg.frequencyDefaults()}}, db, set.Registry, log, nil)
	problems, _ := db.CheckSchema(ctx)
	app.SetTweets(mautic.HasTweets(problems))
	trace, dec, err := app.Preview(ctx, contact, message)
	if err != nil {
		return fmt.Errorf("contact %d, message %d: %w", contact, message, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"contact_id": contact, "message_id": message, "trace": trace, "decision": dec})
	}
	fmt.Fprintf(stdout, "contact %d, marketing message %d\n", contact, message)
	for i, e := range trace {
		line := fmt.Sprintf("  %d. %-20s %-17s", i+1, e.Channel, e.Decision)
		if e.Reason != "" {
			line += " " + string(e.Reason)
		}
		if e.Detail != "" {
			line += " (" + e.Detail + ")"
		}
		fmt.Fprintln(stdout, strings.TrimRight(line, " "))
	}
	switch dec.State {
	case "sent":
		fmt.Fprintf(stdout, "decision: send on %s (content %d)\n", dec.Channel, dec.ChannelID)
	case "queued":
		fmt.Fprintf(stdout, "decision: queue on %s until %s UTC\n", dec.Channel, dec.Scheduled.Format("2006-01-02 15:04:05"))
	default:
		fmt.Fprintln(stdout, "decision: fail (no channel can be used)")
	}
	return nil
}
