// Package mautic is typed, prefix-aware access to Mautic's MySQL/MariaDB
// tables: contacts, marketing messages and their content, channel
// preferences, frequency rules and their counting, do-not-contact entries,
// the stats rows and counters a send writes, and message_queue. It also holds
// the two Mautic formats the sidecar must speak: PHP serialize() and the
// encryption of integration keys.
//
// It keeps Mautic's table semantics exactly (see mautic-reference.md): no
// ALTER, explicit column lists, every NOT NULL column written, dates in UTC.
// Every write takes the caller's transaction (Execer), so that the stats of a
// send commit together with the dispatch's new state.
//
// The package imports no other package of this module.
package mautic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// Sentinel errors.
var (
	// ErrNotFound is returned when a requested row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidPrefix is returned for a table prefix outside [A-Za-z0-9_].
	ErrInvalidPrefix = errors.New("invalid table prefix")
)

// Config says where Mautic's database is.
type Config struct {
	// DSN is a go-sql-driver DSN. parseTime=true and loc=UTC are forced.
	DSN string
	// Prefix is Mautic's db_table_prefix; it applies to every table.
	Prefix string
	// MaxOpenConns sizes the pool (0: 32).
	MaxOpenConns int
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]*$`)

// ValidatePrefix returns ErrInvalidPrefix (wrapped, naming the prefix) when
// prefix has characters outside [A-Za-z0-9_].
func ValidatePrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) || len(prefix) > 31 {
		return fmt.Errorf("%w %q: only letters, digits and _ are allowed (at most 31)", ErrInvalidPrefix, prefix)
	}
	return nil
}

// NormalizeDSN parses dsn and forces the settings the package relies on:
// parseTime=true, loc=UTC, client-side parameter interpolation and utf8mb4.
func NormalizeDSN(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse MAUTIC_DB_DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	// Time arguments are sent as text; with nanoseconds ('...:07.014176602')
	// MariaDB cannot use an index on a DATETIME(6) column for them and
	// scans the table (EXPLAIN: a claim's lease check, the status page's
	// last hour, the dedup key purge). No column holds more than
	// microseconds, so nothing is lost.
	if err := cfg.Apply(mysql.TimeTruncate(time.Microsecond)); err != nil {
		return nil, fmt.Errorf("parse MAUTIC_DB_DSN: %w", err)
	}
	if cfg.Collation == "" || !strings.HasPrefix(cfg.Collation, "utf8mb4") {
		cfg.Collation = "utf8mb4_unicode_ci"
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Our own sessions read and write UTC; NOW() is never used for data.
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

// RedactDSN returns dsn with its password masked, for logs and errors.
func RedactDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "<unparsable DSN>"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}

// DB is Mautic's database.
type DB struct {
	*sqlx.DB
	prefix string
	q      queries
	mcfg   *mysql.Config // as opened (nil when wrapped)
	// noScheduledIndex is set when message_queue has no index named
	// message_scheduled_date (ClaimDueQueueRows then gives no hint).
	noScheduledIndex atomic.Bool
}

// Open connects to Mautic's database and checks that it answers.
func Open(ctx context.Context, c Config) (*DB, error) {
	if err := ValidatePrefix(c.Prefix); err != nil {
		return nil, err
	}
	mc, err := NormalizeDSN(c.DSN)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sdb := sql.OpenDB(connector)
	n := c.MaxOpenConns
	if n <= 0 {
		n = 32
	}
	sdb.SetMaxOpenConns(n)
	sdb.SetMaxIdleConns(n)
	sdb.SetConnMaxLifetime(30 * time.Minute)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("connect to %s as %q: %w", mc.Addr, mc.User, err)
	}
	db := &DB{DB: sqlx.NewDb(sdb, "mysql"), prefix: c.Prefix, mcfg: mc}
	db.q = buildQueries(c.Prefix)
	return db, nil
}

// OpenMultiStatement opens a second, small pool on the same database whose
// connections accept several statements in one round trip (the intake's
// fast path). The caller closes it. It returns nil, nil for a wrapped DB.
func (db *DB) OpenMultiStatement(maxConns int) (*sql.DB, error) {
	if db.mcfg == nil {
		return nil, nil
	}
	mc := db.mcfg.Clone()
	mc.MultiStatements = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	m := sql.OpenDB(connector)
	m.SetMaxOpenConns(maxConns)
	m.SetMaxIdleConns(maxConns)
	m.SetConnMaxLifetime(30 * time.Minute)
	return m, nil
}

// Wrap uses an already open database (tests, the demo).
func Wrap(sdb *sqlx.DB, prefix string) (*DB, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	return &DB{DB: sdb, prefix: prefix, q: buildQueries(prefix)}, nil
}

// lockScope names this database and prefix in server-wide named locks.
func (db *DB) lockScope() string {
	name := ""
	if db.mcfg != nil {
		name = db.mcfg.DBName
	}
	return name + "/" + db.prefix
}

// Prefix returns the table prefix.
func (db *DB) Prefix() string { return db.prefix }

// T returns the quoted, prefixed name of a table.
func (db *DB) T(table string) string { return tableName(db.prefix, table) }

func tableName(prefix, table string) string { return "`" + prefix + table + "`" }

// Execer is what the write methods need: a transaction or the DB itself.
type Execer interface {
	sqlx.ExtContext
}

// Querier is what the read methods need.
type Querier interface {
	sqlx.QueryerContext
}

// inPlaceholders returns "?,?,?" for n values.
func inPlaceholders(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// uniqueIDs returns ids without duplicates and without values <= 0, in order.
func uniqueIDs(ids []int64) []int64 {
	seen := make(map[int64]struct{}, len(ids))
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if id <= 0 {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// mysqlTime formats t (in UTC) as Mautic stores DATETIME values.
func mysqlTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
