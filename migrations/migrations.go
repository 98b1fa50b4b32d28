// Package migrations holds the SQL of the sidecar's own tables (sidecar_*)
// and applies it with golang-migrate. It never touches Mautic's tables and
// has no "down": the sidecar never drops anything.
//
// The files use {prefix} for Mautic's db_table_prefix; the source below
// substitutes it when golang-migrate reads a file. The version table is
// {prefix}sidecar_schema_migrations.
package migrations

import (
	"bytes"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/golang-migrate/migrate/v4"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// TableName is the version table's name without the prefix.
const TableName = "sidecar_schema_migrations"

// Latest returns the highest migration version shipped in this binary.
func Latest() uint {
	entries, _ := fs.ReadDir(files, ".")
	var vs []int
	for _, e := range entries {
		n, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".up.sql") {
			continue
		}
		if v, err := strconv.Atoi(n); err == nil {
			vs = append(vs, v)
		}
	}
	sort.Ints(vs)
	if len(vs) == 0 {
		return 0
	}
	return uint(vs[len(vs)-1])
}

// Status is the state of the sidecar's schema in a database.
type Status struct {
	Version uint // 0: nothing applied
	Dirty   bool // a migration failed half-way; see docs/operator-guide.md, "A dirty migration"
	Latest  uint
}

// Advice says what to do about a schema that is not current.
func (s Status) Advice() string {
	if s.Dirty {
		return "the last migration failed half-way: see docs/operator-guide.md, \"A dirty migration\""
	}
	return "run `sidecar migrate up`"
}

// Current reports whether the schema is at the latest version and clean.
func (s Status) Current() bool { return !s.Dirty && s.Version == s.Latest }

func (s Status) String() string {
	d := ""
	if s.Dirty {
		d = " (dirty)"
	}
	return fmt.Sprintf("version %d of %d%s", s.Version, s.Latest, d)
}

// Up applies every pending migration. It is idempotent and safe to run from
// several replicas at once (golang-migrate takes GET_LOCK).
func Up(dsn, prefix string) error {
	m, closeFn, err := open(dsn, prefix)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Read returns the schema status without changing anything.
func Read(db *sql.DB, prefix string) (Status, error) {
	st := Status{Latest: Latest()}
	tbl := "`" + prefix + TableName + "`"
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", prefix+TableName).Scan(&n)
	if err != nil {
		return st, fmt.Errorf("read migration status: %w", err)
	}
	if n == 0 {
		return st, nil
	}
	var v int64
	var dirty bool
	err = db.QueryRow("SELECT version, dirty FROM "+tbl+" LIMIT 1").Scan(&v, &dirty)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read migration status: %w", err)
	}
	st.Version, st.Dirty = uint(v), dirty
	return st, nil
}

func open(dsn, prefix string) (*migrate.Migrate, func(), error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("parse DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, nil, errors.New("migrate: the DSN names no database")
	}
	cfg.MultiStatements = true
	cfg.ParseTime = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	drv, err := migratemysql.WithInstance(db, &migratemysql.Config{
		MigrationsTable: prefix + TableName,
		DatabaseName:    cfg.DBName,
	})
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migrate driver: %w", err)
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migrate source: %w", err)
	}
	m, err := migrate.NewWithInstance("embedded", &prefixSource{Driver: src, prefix: prefix}, "mysql", drv)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return m, func() { _, _ = m.Close() }, nil
}

// prefixSource replaces {prefix} in every migration it reads.
type prefixSource struct {
	source.Driver
	prefix string
}

func (s *prefixSource) ReadUp(version uint) (io.ReadCloser, string, error) {
	r, id, err := s.Driver.ReadUp(version)
	if err != nil {
		return nil, id, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, id, err
	}
	b = bytes.ReplaceAll(b, []byte("{prefix}"), []byte(s.prefix))
	return io.NopCloser(bytes.NewReader(b)), id, nil
}

func (s *prefixSource) ReadDown(version uint) (io.ReadCloser, string, error) {
	return nil, "", &fs.PathError{Op: "read down", Path: strconv.FormatUint(uint64(version), 10), Err: fs.ErrNotExist}
}
