package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/testdb"
)

func demoServer(t *testing.T) (*sqlx.DB, string) {
	t.Helper()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN())
	require.NoError(t, err)
	cfg.DBName = ""
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	require.NoError(t, db.Ping(), "a database server for the tests (make test starts one)")
	t.Cleanup(func() { db.Close() })
	return db, cfg.FormatDSN()
}

// TestDemo runs `sidecar demo --once` as a user would and checks what it
// prints and that its numbers match what was written.
func TestDemo(t *testing.T) {
	admin, server := demoServer(t)
	name := fmt.Sprintf("sct_demo_%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, []string{"demo", "--once", "--contacts", "60", "--demo-database", name},
		[]string{"MAUTIC_DB_DSN=" + server, "SIDECAR_LISTEN=127.0.0.1:0"}, &out, &errb)
	require.NoError(t, err, "%s\n%s", out.String(), errb.String())
	text := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Ada Lovelace .*sent email\s+sent on email`),
		regexp.MustCompile(`Ben Ortiz .*sent sms`),
		regexp.MustCompile(`Cleo Park .*sent sms\s+email skipped \(dnc`),
		regexp.MustCompile(`Dan Weiss .*sent sms\s+email skipped \(frequency: 1 of 1 per DAY\)`),
		regexp.MustCompile(`Eve Adams .*sent notification\s+email skipped \(paused`),
		regexp.MustCompile(`Gia Rossi .*queued email\s+email skipped \(frequency: 3 of 3 per WEEK \(global default\)\)`),
		regexp.MustCompile(`Hal Moore .*failed\s+email skipped \(no_address`),
		regexp.MustCompile(`Ivy Chen .*queued email`),
		regexp.MustCompile(`Jo Bauer .*sent sms\s+email failed \(smtp`),
		regexp.MustCompile(`Kim Lee .*sent notification.*sms failed \(twilio 400 code 21211`),
		regexp.MustCompile(`Lu Silva .*sent notification\s+sent on notification`),
		regexp.MustCompile(`totals \(72 contacts, routed in `),
		regexp.MustCompile(`status page  http://127\.0\.0\.1:\d+/`),
	} {
		require.Regexp(t, want, text)
	}
	// What the demo says was sent is what the stand-ins and the stats hold.
	m := regexp.MustCompile(`(\d+) messages caught by the SMTP stand-in; (\d+) SMS and (\d+) web pushes`).FindStringSubmatch(text)
	require.Len(t, m, 4, text)
	var sentEmail, okSMS, push int
	require.NoError(t, admin.Get(&sentEmail, "SELECT sent_count FROM `"+name+"`.emails"))
	require.NoError(t, admin.Get(&okSMS, "SELECT COUNT(*) FROM `"+name+"`.sms_message_stats WHERE is_failed = 0"))
	require.NoError(t, admin.Get(&push, "SELECT COUNT(*) FROM `"+name+"`.push_notification_stats"))
	require.Equal(t, m[1:], []string{fmt.Sprint(sentEmail), fmt.Sprint(okSMS), fmt.Sprint(push)}, "no send without its stat, none twice")
	var accepted int
	require.NoError(t, admin.Get(&accepted, "SELECT COUNT(*) FROM `"+name+"`.sidecar_dispatches WHERE state = 'accepted'"))
	require.Zero(t, accepted)

	t.Run("a second run starts over on its own database", func(t *testing.T) {
		var out2 bytes.Buffer
		err := run(ctx, []string{"demo", "--once", "--contacts", "0", "--demo-database", name},
			[]string{"MAUTIC_DB_DSN=" + server, "SIDECAR_LISTEN=127.0.0.1:0"}, &out2, &bytes.Buffer{})
		require.NoError(t, err)
		require.Contains(t, out2.String(), "totals (12 contacts")
	})
	t.Run("it refuses a database it did not create", func(t *testing.T) {
		other := name + "_x"
		_, err := admin.Exec("CREATE DATABASE `" + other + "`")
		require.NoError(t, err)
		t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS `" + other + "`") })
		_, err = admin.Exec("CREATE TABLE `" + other + "`.precious (id INT)")
		require.NoError(t, err)
		err = run(ctx, []string{"demo", "--once", "--demo-database", other}, []string{"MAUTIC_DB_DSN=" + server}, &bytes.Buffer{}, &bytes.Buffer{})
		require.ErrorContains(t, err, "was not created by the demo")
		var n int
		require.NoError(t, admin.Get(&n, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'precious'", other))
		require.Equal(t, 1, n, "untouched")
	})
	require.False(t, strings.Contains(errb.String(), "level=ERROR"), errb.String())
}
