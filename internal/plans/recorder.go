// Package plans records the SELECT statements that the sidecar's reads run
// and asks the server how it would execute them (EXPLAIN): which index each
// table is read through, how many rows the optimizer expects to read, and
// whether it sorts (filesort) or builds a temporary table. Survey runs the
// hot reads of a routing batch and of a queue batch; cmd/loadgen's plans
// phase and this package's test use it to catch a read that scans a big
// table.
package plans

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/mautic"
)

// Query is one recorded statement.
type Query struct {
	// Name is the Go function that ran it (see Named).
	Name string
	// Claim marks a claim: a locking read whose scan must follow an index
	// in the ORDER BY order (no filesort), or SKIP LOCKED would lock rows
	// it does not return.
	Claim bool
	SQL   string
	Args  []any
}

type stepKey struct{}

type step struct {
	name  string
	claim bool
}

// Named returns a context whose statements a Recorder files under name.
func Named(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, stepKey{}, step{name: name})
}

// NamedClaim is Named for a claim (see Query.Claim).
func NamedClaim(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, stepKey{}, step{name: name, claim: true})
}

func stepOf(ctx context.Context) step {
	s, _ := ctx.Value(stepKey{}).(step)
	if s.name == "" {
		s.name = "?"
	}
	return s
}

// Recorder collects the SELECT statements run through the Queryers and
// pools it makes, in order. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	queries []Query
}

// Queries returns what was recorded so far.
func (r *Recorder) Queries() []Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Query(nil), r.queries...)
}

var selectRE = regexp.MustCompile(`(?is)^[\s(]*select\b`)

// add records query when it is a read.
func (r *Recorder) add(ctx context.Context, query string, args []any) {
	if !selectRE.MatchString(query) {
		return
	}
	s := stepOf(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, Query{Name: s.name, Claim: s.claim, SQL: query, Args: append([]any(nil), args...)})
}

// Wrap returns a Queryer that runs everything on inner (a *sqlx.DB or
// *sqlx.Tx) and records its reads.
func (r *Recorder) Wrap(inner sqlx.ExtContext) *Queryer { return &Queryer{inner: inner, rec: r} }

// Queryer passes every call through to the database or transaction it
// wraps and records the SELECT statements. It satisfies mautic.Querier,
// mautic.Execer and store.Queryer.
type Queryer struct {
	inner sqlx.ExtContext
	rec   *Recorder
}

var _ sqlx.ExtContext = (*Queryer)(nil)

// QueryContext implements sqlx.QueryerContext.
func (q *Queryer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q.rec.add(ctx, query, args)
	return q.inner.QueryContext(ctx, query, args...)
}

// QueryxContext implements sqlx.QueryerContext.
func (q *Queryer) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	q.rec.add(ctx, query, args)
	return q.inner.QueryxContext(ctx, query, args...)
}

// QueryRowxContext implements sqlx.QueryerContext.
func (q *Queryer) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	q.rec.add(ctx, query, args)
	return q.inner.QueryRowxContext(ctx, query, args...)
}

// ExecContext implements sqlx.ExecerContext; writes are not recorded.
func (q *Queryer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.inner.ExecContext(ctx, query, args...)
}

// DriverName implements sqlx.ExtContext.
func (q *Queryer) DriverName() string { return q.inner.DriverName() }

// Rebind implements sqlx.ExtContext.
func (q *Queryer) Rebind(query string) string { return q.inner.Rebind(query) }

// BindNamed implements sqlx.ExtContext.
func (q *Queryer) BindNamed(query string, arg any) (string, []any, error) {
	return q.inner.BindNamed(query, arg)
}

// OpenDB opens a pool on dsn (a go-sql-driver DSN, with the settings
// mautic.Open forces) whose reads r records, for code that holds its own
// *sqlx.DB (store.DB's status reads). The caller closes it.
func (r *Recorder) OpenDB(dsn string) (*sqlx.DB, error) {
	cfg, err := mautic.NormalizeDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("recording pool: %w", err)
	}
	inner, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("recording pool: %w", err)
	}
	return sqlx.NewDb(sql.OpenDB(connector{inner: inner, rec: r}), "mysql"), nil
}

// connector wraps the driver's connector so that every connection records.
type connector struct {
	inner driver.Connector
	rec   *Recorder
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: cn, rec: c.rec}, nil
}

func (c connector) Driver() driver.Driver { return c.inner.Driver() }

// conn forwards everything to the driver's connection (go-sql-driver's
// implements all of these interfaces) and records the reads.
type conn struct {
	driver.Conn
	rec *Recorder
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	c.rec.add(ctx, query, vals)
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return q.QueryContext(ctx, query, args)
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return e.ExecContext(ctx, query, args)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin() //nolint:staticcheck // the fallback database/sql itself uses
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// compact shortens a statement for messages: one line, at most n bytes.
func compact(query string, n int) string {
	s := strings.Join(strings.Fields(query), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
