// Package testdb gives tests a fresh MariaDB/MySQL database with Mautic's
// schema and the sidecar's migrations applied.
//
// The server comes from MYSQL_TEST_DSN (a go-sql-driver DSN without a
// database name, e.g. "root@tcp(127.0.0.1:3306)/"); without it, a server on
// 127.0.0.1:3306 (root, no password) is used. `make test` sets MYSQL_TEST_DSN,
// starting a private mariadbd when none answers. A missing server fails the
// test: database tests never skip.
//
// SIDECAR_TEST_PREFIX sets Mautic's table prefix for the run (`make test`
// runs the database suites once without and once with a prefix).
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// DB is one fresh database.
type DB struct {
	*sqlx.DB
	// Name is the database name.
	Name string
	// DSN connects to this database (as the sidecar would use it).
	DSN string
	// ServerDSN connects to the server without a database.
	ServerDSN string
	// Prefix is Mautic's table prefix used for this database.
	Prefix string
	// Mautic is the mautic.DB on this database.
	Mautic *mautic.DB
}

// ServerDSN returns the DSN of the test server (no database selected).
func ServerDSN() string {
	if v := strings.TrimSpace(os.Getenv("MYSQL_TEST_DSN")); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// Prefix returns the table prefix of this test run.
func Prefix() string { return os.Getenv("SIDECAR_TEST_PREFIX") }

// Option changes how New builds the database.
type Option func(*options)

type options struct {
	noSchema     bool
	noMigrations bool
	prefix       *string
	server       string
}

// WithoutSchema leaves Mautic's tables out.
func WithoutSchema() Option { return func(o *options) { o.noSchema = true } }

// WithoutMigrations leaves the sidecar's tables out.
func WithoutMigrations() Option { return func(o *options) { o.noMigrations = true } }

// WithPrefix overrides the run's table prefix.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = &p } }

// WithServer creates the database on another server (a go-sql-driver DSN
// without a database name) instead of the test server: a private server a
// test may stop and restart.
func WithServer(dsn string) Option { return func(o *options) { o.server = dsn } }

// New creates a fresh database, loads the schema and migrations, and drops the
// database when the test ends.
func New(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	prefix := Prefix()
	if o.prefix != nil {
		prefix = *o.prefix
	}
	if err := mautic.ValidatePrefix(prefix); err != nil {
		tb.Fatalf("SIDECAR_TEST_PREFIX: %v", err)
	}
	server := ServerDSN()
	if o.server != "" {
		server = o.server
	}
	scfg, err := mysql.ParseDSN(server)
	if err != nil {
		tb.Fatalf("MYSQL_TEST_DSN: %v", err)
	}
	scfg.DBName = ""
	scfg.ParseTime = true
	scfg.Loc = time.UTC
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := sqlx.Open("mysql", scfg.FormatDSN())
	if err != nil {
		tb.Fatalf("open test server: %v", err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		tb.Fatalf("no MariaDB/MySQL server for the tests at %s (%v): run `make test`, which starts one, or set MYSQL_TEST_DSN", scfg.Addr, err)
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	name := "sct_" + hex.EncodeToString(rb[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		c, err := sqlx.Open("mysql", scfg.FormatDSN())
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	})
	dcfg := scfg.Clone()
	dcfg.DBName = name
	dsn := dcfg.FormatDSN()
	if !o.noSchema {
		stmts, err := mautic.SchemaStatements(prefix)
		if err != nil {
			tb.Fatalf("schema: %v", err)
		}
		conn, err := sqlx.Open("mysql", dsn)
		if err != nil {
			tb.Fatalf("open test database: %v", err)
		}
		for _, st := range stmts {
			if _, err := conn.ExecContext(ctx, st); err != nil {
				conn.Close()
				tb.Fatalf("load Mautic schema: %v\n%s", err, st)
			}
		}
		conn.Close()
	}
	if !o.noMigrations {
		if err := migrations.Up(dsn, prefix); err != nil {
			tb.Fatalf("migrations: %v", err)
		}
	}
	mdb, err := mautic.Open(ctx, mautic.Config{DSN: dsn, Prefix: prefix, MaxOpenConns: 32})
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() { mdb.Close() })
	return &DB{DB: mdb.DB, Name: name, DSN: dsn, ServerDSN: scfg.FormatDSN(), Prefix: prefix, Mautic: mdb}
}

// T returns the quoted, prefixed table name.
func (d *DB) T(table string) string { return "`" + d.Prefix + table + "`" }

// MustExec runs a statement, replacing {p} with the table prefix.
func (d *DB) MustExec(tb testing.TB, query string, args ...any) {
	tb.Helper()
	q := strings.ReplaceAll(query, "{p}", d.Prefix)
	if _, err := d.DB.Exec(q, args...); err != nil {
		tb.Fatalf("exec %s: %v", q, err)
	}
}

// Count returns SELECT COUNT(*) FROM table WHERE where (table unprefixed).
func (d *DB) Count(tb testing.TB, table, where string, args ...any) int {
	tb.Helper()
	q := "SELECT COUNT(*) FROM " + d.T(table)
	if where != "" {
		q += " WHERE " + strings.ReplaceAll(where, "{p}", d.Prefix)
	}
	var n int
	if err := d.DB.Get(&n, q, args...); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Fmt is fmt.Sprintf with {p} replaced by the prefix.
func (d *DB) Fmt(format string, args ...any) string {
	return strings.ReplaceAll(fmt.Sprintf(format, args...), "{p}", d.Prefix)
}
