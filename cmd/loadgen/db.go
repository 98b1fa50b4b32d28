package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// markerTable marks a database loadgen created: only such a database is
// ever dropped or recreated.
const markerTable = "loadgen_marker"

// benchDB is the throwaway database loadgen works in: Mautic's schema, the
// sidecar's migrations and the generated dataset.
type benchDB struct {
	Name   string
	Prefix string
	// DSN connects to the database (the sidecar's MAUTIC_DB_DSN).
	DSN string
	// DB is a pool for seeding, polling and the floors.
	DB *sqlx.DB
	// ServerPID is the database server's process when it runs on this
	// machine (0: unknown), for its CPU time.
	ServerPID int

	server *mysql.Config // no database selected
}

// T returns the prefixed, quoted name of a Mautic or sidecar table.
func (b *benchDB) T(table string) string { return "`" + b.Prefix + table + "`" }

// serverConfig parses the server DSN and normalizes it for loadgen.
func serverConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("server dsn: %w", err)
	}
	cfg.DBName = ""
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg, nil
}

// createBenchDB creates the database, refusing one it did not create, and
// loads Mautic's schema and the sidecar's migrations.
func createBenchDB(ctx context.Context, serverDSN, name, prefix string) (*benchDB, error) {
	scfg, err := serverConfig(serverDSN)
	if err != nil {
		return nil, err
	}
	admin, err := sqlx.Open("mysql", scfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("no MariaDB/MySQL server at %s: %w", scfg.Addr, err)
	}
	exists, marked, err := inspect(ctx, admin, name)
	if err != nil {
		return nil, err
	}
	if exists && !marked {
		return nil, fmt.Errorf("database %s exists and has no %s table: loadgen did not create it and will not touch it (choose another --db)",
			name, markerTable)
	}
	if exists {
		if _, err := admin.ExecContext(ctx, "DROP DATABASE `"+name+"`"); err != nil {
			return nil, fmt.Errorf("drop previous %s: %w", name, err)
		}
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE TABLE `"+name+"`.`"+markerTable+"` (created_at DATETIME NOT NULL, tool VARCHAR(64) NOT NULL)"+
		" ENGINE=InnoDB"); err != nil {
		return nil, fmt.Errorf("mark database %s: %w", name, err)
	}
	if _, err := admin.ExecContext(ctx, "INSERT INTO `"+name+"`.`"+markerTable+"` VALUES (?, 'cmd/loadgen')", time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("mark database %s: %w", name, err)
	}
	dcfg := scfg.Clone()
	dcfg.DBName = name
	b := &benchDB{Name: name, Prefix: prefix, DSN: dcfg.FormatDSN(), server: scfg}
	if b.DB, err = b.pool(64, nil); err != nil {
		return nil, err
	}
	stmts, err := mautic.SchemaStatements(prefix)
	if err != nil {
		b.DB.Close()
		return nil, err
	}
	for _, st := range stmts {
		if _, err := b.DB.ExecContext(ctx, st); err != nil {
			b.DB.Close()
			return nil, fmt.Errorf("load Mautic schema: %w", err)
		}
	}
	if err := migrations.Up(b.DSN, prefix); err != nil {
		b.DB.Close()
		return nil, fmt.Errorf("sidecar migrations: %w", err)
	}
	return b, nil
}

// inspect reports whether database name exists and carries the marker.
func inspect(ctx context.Context, admin *sqlx.DB, name string) (exists, marked bool, err error) {
	var n int
	if err := admin.GetContext(ctx, &n, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name); err != nil {
		return false, false, fmt.Errorf("inspect database %s: %w", name, err)
	}
	if n == 0 {
		return false, false, nil
	}
	if err := admin.GetContext(ctx, &n, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
		name, markerTable); err != nil {
		return true, false, fmt.Errorf("inspect database %s: %w", name, err)
	}
	return true, n > 0, nil
}

// pool opens a connection pool on the database with extra session
// variables (go-sql-driver sends unknown DSN parameters as SET).
func (b *benchDB) pool(maxConns int, vars map[string]string) (*sqlx.DB, error) {
	cfg := b.server.Clone()
	cfg.DBName = b.Name
	cfg.InterpolateParams = true
	if len(vars) > 0 {
		cfg.Params = map[string]string{}
		for k, v := range vars {
			cfg.Params[k] = v
		}
	}
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", b.Name, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	return db, nil
}

// Close closes the pool.
func (b *benchDB) Close() {
	if b.DB != nil {
		b.DB.Close()
	}
}

// drop drops the database after checking its marker once more.
func (b *benchDB) drop(ctx context.Context) error {
	admin, err := sqlx.Open("mysql", b.server.FormatDSN())
	if err != nil {
		return fmt.Errorf("open server: %w", err)
	}
	defer admin.Close()
	exists, marked, err := inspect(ctx, admin, b.Name)
	if err != nil || !exists {
		return err
	}
	if !marked {
		return errors.New("database " + b.Name + " lost its marker: not dropped")
	}
	if _, err := admin.ExecContext(ctx, "DROP DATABASE `"+b.Name+"`"); err != nil {
		return fmt.Errorf("drop %s: %w", b.Name, err)
	}
	return nil
}

// serverVersion returns SELECT VERSION() and a few settings that bound what
// any commit can do.
func (b *benchDB) serverVersion(ctx context.Context) (version string, settings map[string]string, err error) {
	if err := b.DB.GetContext(ctx, &version, "SELECT VERSION()"); err != nil {
		return "", nil, fmt.Errorf("server version: %w", err)
	}
	settings = map[string]string{}
	rows, err := b.DB.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN"+
		" ('innodb_flush_log_at_trx_commit','innodb_buffer_pool_size','sync_binlog','log_bin','innodb_doublewrite','max_connections')")
	if err != nil {
		return version, settings, nil // informative only
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if rows.Scan(&k, &v) == nil {
			settings[k] = v
		}
	}
	return version, settings, rows.Err()
}
