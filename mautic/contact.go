package mautic

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Contact is a leads row: every column by name, as Mautic reads it (strings,
// nil for NULL), so that any custom field can be used in tokens.
type Contact struct {
	ID     int64
	Fields map[string]*string
	// Company holds the primary company's fields (companies joined through
	// companies_leads with is_primary = 1); nil when there is none.
	Company map[string]*string
}

// Field returns the value of a contact field, "" when missing or NULL.
func (c Contact) Field(alias string) string {
	if v := c.Fields[alias]; v != nil {
		return *v
	}
	return ""
}

// Email returns the contact's email address.
func (c Contact) Email() string { return c.Field("email") }

// Phone returns the number Mautic's SMS channel uses: mobile, else phone.
func (c Contact) Phone() string {
	if m := c.Field("mobile"); m != "" {
		return m
	}
	return c.Field("phone")
}

// Twitter returns the contact's twitter handle.
func (c Contact) Twitter() string { return c.Field("twitter") }

// ExistingContacts returns which of ids exist in leads.
func (db *DB) ExistingContacts(ctx context.Context, q Querier, ids []int64) (map[int64]bool, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT id FROM "+db.T("leads")+" WHERE id IN ("+inPlaceholders(len(ids))+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("existing contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("existing contacts: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// Contact returns one contact with its primary company. It returns
// ErrNotFound when the contact does not exist.
func (db *DB) Contact(ctx context.Context, id int64) (Contact, error) {
	m, err := db.Contacts(ctx, db, []int64{id}, true)
	if err != nil {
		return Contact{}, err
	}
	c, ok := m[id]
	if !ok {
		return Contact{}, fmt.Errorf("contact %d: %w", id, ErrNotFound)
	}
	return c, nil
}

// Contacts loads the contacts with the given ids (missing ids are absent from
// the result), with their primary company's fields when withCompany is set.
func (db *DB) Contacts(ctx context.Context, q Querier, ids []int64, withCompany bool) (map[int64]Contact, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]Contact, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, "SELECT * FROM "+db.T("leads")+" WHERE id IN ("+inPlaceholders(len(ids))+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load contacts: %w", err)
	}
	recs, err := scanStringRows(rows)
	if err != nil {
		return nil, fmt.Errorf("load contacts: %w", err)
	}
	for _, r := range recs {
		idp := r["id"]
		if idp == nil {
			continue
		}
		id, err := strconv.ParseInt(*idp, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("load contacts: bad id %q", *idp)
		}
		out[id] = Contact{ID: id, Fields: r}
	}
	if withCompany && len(out) > 0 {
		comp, err := db.primaryCompanies(ctx, q, ids)
		if err != nil {
			return nil, err
		}
		for id, f := range comp {
			if c, ok := out[id]; ok {
				c.Company = f
				out[id] = c
			}
		}
	}
	return out, nil
}

func (db *DB) primaryCompanies(ctx context.Context, q Querier, ids []int64) (map[int64]map[string]*string, error) {
	query := "SELECT cl.lead_id AS sidecar_lead_id, c.* FROM " + db.T("companies_leads") + " cl JOIN " +
		db.T("companies") + " c ON c.id = cl.company_id WHERE cl.is_primary = 1 AND cl.lead_id IN (" +
		inPlaceholders(len(ids)) + ") ORDER BY cl.lead_id, c.id"
	rows, err := q.QueryContext(ctx, query, int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load primary companies: %w", err)
	}
	recs, err := scanStringRows(rows)
	if err != nil {
		return nil, fmt.Errorf("load primary companies: %w", err)
	}
	out := map[int64]map[string]*string{}
	for _, r := range recs {
		lp := r["sidecar_lead_id"]
		if lp == nil {
			continue
		}
		id, _ := strconv.ParseInt(*lp, 10, 64)
		if _, dup := out[id]; dup {
			continue // several primary companies: the lowest id wins
		}
		delete(r, "sidecar_lead_id")
		out[id] = r
	}
	return out, nil
}

// scanStringRows reads every row into a map of column → value rendered the
// way Mautic's PDO connection (stringified fetches) renders it.
func scanStringRows(rows *sql.Rows) ([]map[string]*string, error) {
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []map[string]*string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		rec := make(map[string]*string, len(cols))
		for i, ct := range cols {
			rec[ct.Name()] = stringify(vals[i], ct.DatabaseTypeName())
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

func stringify(v any, dbType string) *string {
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		s = string(x)
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case bool:
		if x {
			s = "1"
		} else {
			s = "0"
		}
	case time.Time:
		if dbType == "DATE" {
			s = x.UTC().Format("2006-01-02")
		} else {
			s = x.UTC().Format("2006-01-02 15:04:05")
		}
	default:
		s = fmt.Sprint(x)
	}
	return &s
}
