package plans

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// DefaultBigTable is the number of rows above which a full scan of a table
// counts as a problem.
const DefaultBigTable = 1000

// Access is one line of EXPLAIN: how one table is read.
type Access struct {
	// Table is the table read, without the prefix ("leads"), or what
	// EXPLAIN names instead ("<union1,2>"); "" when no table is read.
	Table string
	// Alias is how the statement names the table, when it differs.
	Alias string
	// Select is EXPLAIN's select_type (SIMPLE, PRIMARY, UNION, DEPENDENT SUBQUERY...).
	Select string
	// Type is the access type: system, const, eq_ref, ref, range, index
	// (the whole index), ALL (the whole table)...
	Type string
	Key  string
	// Rows is the optimizer's estimate of the rows it reads.
	Rows int64
	// Extra is EXPLAIN's Extra column, as the server wrote it.
	Extra string
	// TableRows is the table's size (InnoDB's estimate); -1 when Table is
	// not a base table of the database.
	TableRows int64
}

// Filesort reports whether the server sorts the rows itself.
func (a Access) Filesort() bool { return strings.Contains(a.Extra, "filesort") }

// Temporary reports whether the server builds a temporary table.
func (a Access) Temporary() bool { return strings.Contains(a.Extra, "temporary") }

// FullScan reports whether the whole table or a whole index is read. An
// index read in its order that stops at a LIMIT (ORDER BY ... LIMIT, type
// index with a small estimate) is not: it reads what it returns.
func (a Access) FullScan(bigTable int64) bool {
	return a.Type == "ALL" || (a.Type == "index" && a.Rows > bigTable)
}

// Plan is a recorded statement with its EXPLAIN.
type Plan struct {
	Query
	Accesses []Access
	// Problems are the findings of Check; empty when the plan is fine.
	Problems []string
}

// Explainer runs EXPLAIN on a database.
type Explainer struct {
	// DB is where EXPLAIN runs: the database the statements were recorded
	// on, opened as the sidecar opens it (mautic.Open), since the recorded
	// arguments are bound through it.
	DB sqlx.QueryerContext
	// Prefix is Mautic's table prefix, removed from table names.
	Prefix string
	// BigTable is the size above which a full scan is a problem (0: DefaultBigTable).
	BigTable int64

	sizes map[string]int64
}

// Explain explains every query, in order, and checks each plan.
func (e *Explainer) Explain(ctx context.Context, queries []Query) ([]Plan, error) {
	if e.sizes == nil {
		if err := e.readSizes(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Plan, 0, len(queries))
	for _, q := range queries {
		p, err := e.explain(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// readSizes reads the row count estimates of the database's tables.
func (e *Explainer) readSizes(ctx context.Context) error {
	rows, err := e.DB.QueryContext(ctx, "SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		return fmt.Errorf("table sizes: %w", err)
	}
	defer rows.Close()
	e.sizes = map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return fmt.Errorf("table sizes: %w", err)
		}
		e.sizes[name] = n
	}
	return rows.Err()
}

func (e *Explainer) explain(ctx context.Context, q Query) (Plan, error) {
	p := Plan{Query: q}
	rows, err := e.DB.QueryContext(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		return p, fmt.Errorf("explain %s (%s): %w", q.Name, compact(q.SQL, 120), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return p, fmt.Errorf("explain %s: %w", q.Name, err)
	}
	aliases := tableAliases(q.SQL)
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return p, fmt.Errorf("explain %s: %w", q.Name, err)
		}
		col := map[string]string{}
		for i, c := range cols {
			col[strings.ToLower(c)] = vals[i].String
		}
		a := Access{Select: col["select_type"], Type: col["type"], Key: col["key"], Extra: col["extra"], TableRows: -1}
		a.Rows = leadingInt(col["rows"]) // MariaDB may add the filtered share: "500 (12%)"
		name := col["table"]
		if full, ok := aliases[name]; ok && full != name {
			a.Alias, name = name, full
		}
		if n, ok := e.sizes[name]; ok {
			a.TableRows = n
		}
		a.Table = strings.TrimPrefix(name, e.Prefix)
		a.Key = strings.TrimPrefix(a.Key, e.Prefix)
		p.Accesses = append(p.Accesses, a)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("explain %s: %w", q.Name, err)
	}
	p.Problems = CheckPlan(p, e.BigTable)
	return p, nil
}

// CheckPlan returns the problems of a plan: a full scan (of the table or
// of an index) of a table of more than bigTable rows (0: DefaultBigTable),
// and a sort or a temporary table in a claim.
func CheckPlan(p Plan, bigTable int64) []string {
	big := bigTable
	if big <= 0 {
		big = DefaultBigTable
	}
	var out []string
	for _, a := range p.Accesses {
		if a.FullScan(big) && a.TableRows > big {
			out = append(out, fmt.Sprintf("full scan (%s) of %s, %d rows", a.Type, a.Table, a.TableRows))
		}
		if p.Claim && a.Filesort() {
			out = append(out, fmt.Sprintf("claim sorts %s (filesort)", a.Table))
		}
		if p.Claim && a.Temporary() {
			out = append(out, fmt.Sprintf("claim builds a temporary table on %s", a.Table))
		}
	}
	return out
}

// aliasRE finds "FROM `table` alias" and "JOIN `table` alias".
var aliasRE = regexp.MustCompile("(?i)\\b(?:FROM|JOIN)\\s+`([^`]+)`(?:\\s+(?:AS\\s+)?([A-Za-z_][A-Za-z0-9_]*))?")

var notAlias = map[string]bool{"WHERE": true, "JOIN": true, "LEFT": true, "RIGHT": true, "INNER": true, "ON": true, "ORDER": true,
	"GROUP": true, "LIMIT": true, "FOR": true, "UNION": true, "USING": true, "FORCE": true, "USE": true, "IGNORE": true,
	"STRAIGHT_JOIN": true, "HAVING": true, "LOCK": true}

// tableAliases maps each name EXPLAIN may use for a table of query (its
// alias, or its own name) to the table's name.
func tableAliases(query string) map[string]string {
	out := map[string]string{}
	for _, m := range aliasRE.FindAllStringSubmatch(query, -1) {
		out[m[1]] = m[1]
		if m[2] != "" && !notAlias[strings.ToUpper(m[2])] {
			out[m[2]] = m[1]
		}
	}
	return out
}

// Problems returns the problems of all plans, each prefixed with its query's name.
func Problems(plans []Plan) []string {
	var out []string
	for _, p := range plans {
		for _, pr := range p.Problems {
			out = append(out, p.Name+": "+pr)
		}
	}
	return out
}

// Markdown writes the plans as a Markdown table: one line per table read,
// and a last column that names the problems.
func Markdown(w io.Writer, plans []Plan) error {
	var b strings.Builder
	b.WriteString("| query | table | table rows | type | key | rows read (est.) | extra | check |\n")
	b.WriteString("|---|---|---:|---|---|---:|---|---|\n")
	for _, p := range plans {
		check := "ok"
		if len(p.Problems) > 0 {
			check = "**" + strings.Join(p.Problems, "; ") + "**"
		}
		for i, a := range p.Accesses {
			name := p.Name
			if i > 0 {
				name = "″"
			}
			table := a.Table
			if a.Alias != "" {
				table += " " + a.Alias
			}
			if table == "" {
				table = "-"
			}
			if a.Select != "" && a.Select != "SIMPLE" && a.Select != "PRIMARY" {
				table += " (" + strings.ToLower(a.Select) + ")"
			}
			size := "-"
			if a.TableRows >= 0 {
				size = thousands(a.TableRows)
			}
			c := ""
			if i == 0 {
				c = check
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, cell(table), size, cell(a.Type), cell(a.Key),
				thousands(a.Rows), cell(a.Extra), c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func leadingInt(s string) int64 {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.ParseInt(s[:end], 10, 64)
	return n
}

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
