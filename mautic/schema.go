package mautic

import (
	_ "embed"
	"strings"
)

// schemaSQL is the DDL of every Mautic table the sidecar reads or writes,
// written from mautic-reference.md (Mautic 5.x entity metadata): exact names,
// types, NULL-ness, indexes, foreign keys and generated columns, no database
// defaults on NOT NULL columns. {prefix} stands for the table prefix.
//
//go:embed schema/mautic.sql
var schemaSQL string

// SchemaStatements returns the DDL of Mautic's tables with prefix applied,
// one statement per element, in an order that satisfies the foreign keys.
// It is for tests and the demo's throwaway database; the sidecar never runs
// DDL against a real Mautic database.
func SchemaStatements(prefix string) ([]string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	return splitSQL(strings.ReplaceAll(schemaSQL, "{prefix}", prefix)), nil
}

// SchemaTables returns the unprefixed names of the tables in the schema.
func SchemaTables() []string {
	var out []string
	for _, st := range splitSQL(schemaSQL) {
		const kw = "CREATE TABLE `{prefix}"
		if i := strings.Index(st, kw); i >= 0 {
			rest := st[i+len(kw):]
			if j := strings.IndexByte(rest, '`'); j > 0 {
				out = append(out, rest[:j])
			}
		}
	}
	return out
}

// splitSQL splits a script on semicolons that end a line, dropping comments
// and empty statements. The schema has no semicolons inside literals.
func splitSQL(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			st := strings.TrimSpace(cur.String())
			st = strings.TrimSuffix(st, ";")
			if st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}
