package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// bulkRows is the default number of rows per multi-row INSERT.
const bulkRows = 1000

// bulkInsert accumulates rows of one table and writes them as multi-row
// INSERT statements of at most max rows.
type bulkInsert struct {
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

// newBulk prepares inserts into table (already prefixed and quoted).
func newBulk(table string, cols []string, max int) *bulkInsert {
	return &bulkInsert{
		table: table,
		head:  "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ",
		tuple: "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")",
		max:   max,
	}
}

// add queues one row and writes the statement when it is full.
func (b *bulkInsert) add(ctx context.Context, ex sqlx.ExecerContext, vals ...any) error {
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
		return b.flush(ctx, ex)
	}
	return nil
}

// flush writes the queued rows.
func (b *bulkInsert) flush(ctx context.Context, ex sqlx.ExecerContext) error {
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
