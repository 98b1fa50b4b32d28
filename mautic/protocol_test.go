package mautic_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

// BenchmarkProtocol compares the two ways of sending the hot statements:
// the text protocol with the values interpolated by the client (what the
// sidecar does, mautic.NormalizeDSN) and a server-side prepared statement,
// prepared once and executed with binary values. Each op is one statement
// of 128 rows: a multi-row email_stats insert (the routing write's largest
// statement) and a read of 128 contacts by id. Where the server's process
// is readable (a server on this machine), server-µs/row is the CPU it
// spent per row. docs/performance.md has the figures and the decision.
func BenchmarkProtocol(b *testing.B) {
	db := testdb.New(b)
	ctx := context.Background()
	s := seed.New(db.DB, db.Prefix)
	const rows = 128
	emailID, err := s.Email(ctx, seed.Email{Subject: "Hi", HTML: "<p>Hi</p>"})
	require.NoError(b, err)
	var contacts []int64
	for i := range 1024 {
		c, err := s.Contact(ctx, seed.Contact{Email: fmt.Sprintf("p%d@example.test", i), FirstName: "Ada"})
		require.NoError(b, err)
		contacts = append(contacts, c)
	}

	cfg, err := mautic.NormalizeDSN(db.DSN)
	require.NoError(b, err)
	cfg.InterpolateParams = false
	connector, err := mysql.NewConnector(cfg)
	require.NoError(b, err)
	binary := sql.OpenDB(connector)
	b.Cleanup(func() { binary.Close() })
	binary.SetMaxOpenConns(1)
	text := db.DB.DB

	cols := []string{"email_id", "lead_id", "email_address", "date_sent", "is_read", "is_failed", "viewed_in_browser",
		"tracking_hash", "retry_count", "source", "source_id", "tokens", "open_count", "open_details"}
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	insert := "INSERT INTO " + db.T("email_stats") + " (" + strings.Join(cols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+",", rows), ",")
	selectLeads := "SELECT * FROM " + db.T("leads") + " WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", rows), ",") + ")"
	tokens := `a:2:{s:24:"{contactfield=firstname}";s:3:"Ada";s:17:"{unsubscribe_url}";s:45:"https://mautic.example.test/email/unsubscribe/x";}`
	next := 0
	insertArgs := func() []any {
		args := make([]any, 0, rows*len(cols))
		now := time.Now().UTC()
		for range rows {
			c := contacts[next%len(contacts)]
			next++
			args = append(args, emailID, c, fmt.Sprintf("p%d@example.test", c), now, false, false, false,
				strconv.Itoa(next)+"b3f1c2d4e5f6a7b8c9d0e1", 0, "campaign.event", 7, tokens, 0, "a:0:{}")
		}
		return args
	}
	selectArgs := func() []any {
		args := make([]any, 0, rows)
		for range rows {
			args = append(args, contacts[next%len(contacts)])
			next += 7
		}
		return args
	}
	exec := func(q func(args []any) error, args func() []any) func(b *testing.B) {
		return func(b *testing.B) {
			cpu0 := serverCPU(ctx, text)
			for b.Loop() {
				if err := q(args()); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * rows)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/n, "µs/row")
			if cpu0 >= 0 {
				if cpu1 := serverCPU(ctx, text); cpu1 >= 0 {
					b.ReportMetric((cpu1-cpu0)*1e6/n, "server-µs/row")
				}
			}
		}
	}
	stmtInsert, err := binary.PrepareContext(ctx, insert)
	require.NoError(b, err)
	stmtSelect, err := binary.PrepareContext(ctx, selectLeads)
	require.NoError(b, err)
	drain := func(r *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
		}
		return r.Err()
	}
	b.Run("insert-text", exec(func(a []any) error { _, err := text.ExecContext(ctx, insert, a...); return err }, insertArgs))
	b.Run("insert-prepared", exec(func(a []any) error { _, err := stmtInsert.ExecContext(ctx, a...); return err }, insertArgs))
	b.Run("select-text", exec(func(a []any) error { return drain(text.QueryContext(ctx, selectLeads, a...)) }, selectArgs))
	b.Run("select-prepared", exec(func(a []any) error { return drain(stmtSelect.QueryContext(ctx, a...)) }, selectArgs))
}

// serverCPU returns the CPU seconds the database server's process has used,
// or -1 when its process cannot be read (a server elsewhere).
func serverCPU(ctx context.Context, db *sql.DB) float64 {
	var file string
	if err := db.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&file); err != nil {
		return -1
	}
	pid, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return -1
	}
	// The fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (u + s) / 100
}
