package seed

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Bulk accumulates rows of one table and writes them as multi-row INSERT
// statements of at most Max rows: for seeding large datasets fast.
type Bulk struct {
	table string
	head  string
	tuple string
	max   int
	n     int
	sb    strings.Builder
	args  []any
	// Total counts the rows written.
	Total int64
}

// NewBulk prepares inserts into table (already prefixed and quoted) of the
// columns cols, max rows per statement.
func NewBulk(table string, cols []string, max int) *Bulk {
	return &Bulk{
		table: table,
		head:  "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ",
		tuple: "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")",
		max:   max,
	}
}

// Add queues one row and writes the statement when it is full.
func (b *Bulk) Add(ctx context.Context, ex sqlx.ExecerContext, vals ...any) error {
	if b.n == 0 {
		b.sb.Reset()
		b.sb.WriteString(b.head)
	} else {
		b.sb.WriteByte(',')
	}
	b.sb.WriteString(b.tuple)
	b.args = append(b.args, vals...)
	b.n++
	if b.n >= b.max {
		return b.Flush(ctx, ex)
	}
	return nil
}

// Flush writes the queued rows.
func (b *Bulk) Flush(ctx context.Context, ex sqlx.ExecerContext) error {
	if b.n == 0 {
		return nil
	}
	if _, err := ex.ExecContext(ctx, b.sb.String(), b.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", b.table, err)
	}
	b.Total += int64(b.n)
	b.n = 0
	b.args = b.args[:0]
	return nil
}
