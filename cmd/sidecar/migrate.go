package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// runMigrate is `sidecar migrate up|status`: the sidecar's own tables only.
func runMigrate(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		fmt.Fprintln(stderr, "usage: sidecar migrate up | sidecar migrate status")
		return errors.New("migrate needs up or status (there is no down: the sidecar never drops tables)")
	}
	sub := args[0]
	cfg, _, err := parseCommand("migrate "+sub, args[1:], environ, stderr, nil)
	if err != nil {
		return err
	}
	db, err := mautic.Open(ctx, mautic.Config{DSN: cfg.dsn(), Prefix: cfg.TablePrefix, MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "up" {
		norm, err := mautic.NormalizeDSN(cfg.dsn())
		if err != nil {
			return err
		}
		if err := migrations.Up(norm.FormatDSN(), cfg.TablePrefix); err != nil {
			return err
		}
	}
	st, err := migrations.Read(db.DB.DB, cfg.TablePrefix)
	if err != nil {
		return err
	}
	state := "current"
	if !st.Current() {
		state = "pending: " + st.Advice()
	}
	fmt.Fprintf(stdout, "sidecar schema (%s%s): %s, %s\n", cfg.TablePrefix, migrations.TableName, st, state)
	if st.Dirty {
		return errors.New(st.Advice())
	}
	return nil
}
