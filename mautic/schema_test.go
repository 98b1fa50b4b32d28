package mautic_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

// wantSchemaTables are the Mautic tables the sidecar reads or writes
// (mautic-reference.md sections 1.2, 2, 4, 5, 6, 9 and what they reference).
var wantSchemaTables = []string{
	"users", "categories", "ip_addresses", "leads", "lead_ips_xref",
	"companies", "companies_leads", "messages", "message_channels",
	"lead_frequencyrules", "lead_donotcontact", "campaigns", "campaign_events",
	"campaign_lead_event_log", "campaign_lead_event_failed_log", "message_queue",
	"emails", "email_copies", "email_stats", "sms_messages", "sms_message_stats",
	"push_notifications", "push_notification_stats", "push_ids", "plugins",
	"plugin_integration_settings", "tweets", "tweet_stats",
}

// newSchemaDB is a fresh database with Mautic's schema only: the sidecar's
// own migrations are left out so that these tests see Mautic's tables alone.
func newSchemaDB(t *testing.T, opts ...testdb.Option) *testdb.DB {
	t.Helper()
	return testdb.New(t, append([]testdb.Option{testdb.WithoutMigrations()}, opts...)...)
}

type schemaColumn struct {
	Table    string         `db:"tbl"`
	Name     string         `db:"col"`
	Type     string         `db:"col_type"`
	Nullable string         `db:"nullable"`
	Default  sql.NullString `db:"col_default"`
	Extra    string         `db:"extra"`
	Comment  string         `db:"col_comment"`
}

// schemaColumns returns the columns of the schema's tables keyed by
// "table.column", table names without the prefix.
func schemaColumns(t *testing.T, db *testdb.DB) map[string]schemaColumn {
	t.Helper()
	var rows []schemaColumn
	require.NoError(t, db.Select(&rows, `
		SELECT TABLE_NAME AS tbl, COLUMN_NAME AS col, COLUMN_TYPE AS col_type,
		       IS_NULLABLE AS nullable, COLUMN_DEFAULT AS col_default, EXTRA AS extra,
		       COLUMN_COMMENT AS col_comment
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?`, db.Name))
	tables := prefixedTables(db.Prefix)
	out := map[string]schemaColumn{}
	for _, c := range rows {
		name, ok := tables[c.Table]
		if !ok {
			continue
		}
		c.Table = name
		out[name+"."+c.Name] = c
	}
	require.NotEmpty(t, out, "no column of Mautic's tables found")
	return out
}

// prefixedTables maps prefixed table names to the unprefixed ones.
func prefixedTables(prefix string) map[string]string {
	m := map[string]string{}
	for _, name := range mautic.SchemaTables() {
		m[prefix+name] = name
	}
	return m
}

var intWidth = regexp.MustCompile(`\b(smallint|mediumint|int|bigint)\(\d+\)`)

// normType makes MariaDB's and MySQL 8's COLUMN_TYPE comparable: MySQL 8
// drops the display width of integer types except TINYINT(1).
func normType(s string) string {
	return intWidth.ReplaceAllString(strings.ToLower(s), "$1")
}

func isGenerated(c schemaColumn) bool {
	return strings.Contains(strings.ToUpper(c.Extra), "GENERATED")
}

func isAutoIncrement(c schemaColumn) bool {
	return strings.Contains(strings.ToLower(c.Extra), "auto_increment")
}

func TestSchemaTablesAndStatements(t *testing.T) {
	require.ElementsMatch(t, wantSchemaTables, mautic.SchemaTables())

	stmts, err := mautic.SchemaStatements("mtc_")
	require.NoError(t, err)
	// One CREATE TABLE per statement: nothing else slips into the script.
	require.Len(t, stmts, len(wantSchemaTables))
	for _, st := range stmts {
		require.True(t, strings.HasPrefix(st, "CREATE TABLE `mtc_"), st)
		require.NotContains(t, st, "{prefix}")
		require.True(t, strings.HasSuffix(st,
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC"), st)
	}

	_, err = mautic.SchemaStatements("bad-prefix")
	require.ErrorIs(t, err, mautic.ErrInvalidPrefix)
}

func TestSchemaLoadsWithRunPrefix(t *testing.T) {
	db := newSchemaDB(t)
	assertSchemaTables(t, db)
	assertNamesPrefixed(t, db)
}

func TestSchemaLoadsWithOtherPrefix(t *testing.T) {
	db := newSchemaDB(t, testdb.WithPrefix("zz_"))
	require.Equal(t, "zz_", db.Prefix)
	assertSchemaTables(t, db)
	assertNamesPrefixed(t, db)
	require.Zero(t, db.Count(t, "leads", ""), "zz_leads is queryable through the prefix")

	// A second copy under another prefix fits in the same database: index and
	// constraint names (database-wide for foreign keys) carry the prefix.
	stmts, err := mautic.SchemaStatements("yy_")
	require.NoError(t, err)
	for _, st := range stmts {
		_, err := db.Exec(st)
		require.NoError(t, err, st)
	}
	var n int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'yy\_%'`, db.Name))
	require.Equal(t, len(wantSchemaTables), n)
}

// assertSchemaTables checks that exactly the schema's tables exist, with the
// prefix, and their engine, collation and row format.
func assertSchemaTables(t *testing.T, db *testdb.DB) {
	t.Helper()
	type table struct {
		Name      string `db:"name"`
		Engine    string `db:"engine"`
		Collation string `db:"collation"`
		RowFormat string `db:"row_format"`
	}
	var rows []table
	require.NoError(t, db.Select(&rows, `
		SELECT TABLE_NAME AS name, ENGINE AS engine, TABLE_COLLATION AS collation,
		       ROW_FORMAT AS row_format
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, db.Name))
	var got []string
	for _, r := range rows {
		got = append(got, r.Name)
		require.Equal(t, "InnoDB", r.Engine, r.Name)
		require.Equal(t, "utf8mb4_unicode_ci", r.Collation, r.Name)
		require.Equal(t, "dynamic", strings.ToLower(r.RowFormat), r.Name)
	}
	var want []string
	for _, name := range wantSchemaTables {
		want = append(want, db.Prefix+name)
	}
	require.ElementsMatch(t, want, got)
}

// assertNamesPrefixed checks that every index and every constraint we name
// starts with the prefix, as Mautic prefixes them.
func assertNamesPrefixed(t *testing.T, db *testdb.DB) {
	t.Helper()
	var indexes []string
	require.NoError(t, db.Select(&indexes, `
		SELECT DISTINCT CONCAT(TABLE_NAME, '.', INDEX_NAME) FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND INDEX_NAME <> 'PRIMARY'`, db.Name))
	require.Greater(t, len(indexes), 100)
	for _, ix := range indexes {
		_, name, _ := strings.Cut(ix, ".")
		require.True(t, strings.HasPrefix(name, db.Prefix), "index %s lacks prefix %q", ix, db.Prefix)
	}
	// CHECK constraints are MariaDB's own for JSON columns (named after the
	// column); PRIMARY keys have a fixed name.
	var constraints []string
	require.NoError(t, db.Select(&constraints, `
		SELECT CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS
		WHERE TABLE_SCHEMA = ? AND CONSTRAINT_TYPE IN ('FOREIGN KEY', 'UNIQUE')`, db.Name))
	require.Greater(t, len(constraints), 40)
	for _, c := range constraints {
		_, name, _ := strings.Cut(c, ".")
		require.True(t, strings.HasPrefix(name, db.Prefix), "constraint %s lacks prefix %q", c, db.Prefix)
	}
}

func TestSchemaNotNullColumnsHaveNoDefault(t *testing.T) {
	db := newSchemaDB(t)
	var withDefault []string
	notNull := 0
	for key, c := range schemaColumns(t, db) {
		if c.Nullable != "NO" || isAutoIncrement(c) || isGenerated(c) {
			continue
		}
		notNull++
		if c.Default.Valid {
			withDefault = append(withDefault, key+" DEFAULT "+c.Default.String)
		}
	}
	require.Greater(t, notNull, 100)
	// Mautic declares no database default, except the optimistic-lock version.
	require.Equal(t, []string{"campaigns.version DEFAULT 1"}, withDefault)
}

func TestSchemaGeneratedColumns(t *testing.T) {
	db := newSchemaDB(t)
	var got []string
	for key, c := range schemaColumns(t, db) {
		if isGenerated(c) {
			got = append(got, key+" "+normType(c.Type)+" "+strings.ToUpper(c.Extra))
		}
	}
	require.ElementsMatch(t, []string{
		"leads.generated_email_domain varchar(255) VIRTUAL GENERATED",
		"email_stats.generated_sent_date date VIRTUAL GENERATED",
	}, got)

	db.MustExec(t, "INSERT INTO `{p}leads` (id, is_published, points, email) VALUES (1, 1, 0, 'Jane.Doe@Example.org'), (2, 1, 0, NULL)")
	var domain sql.NullString
	require.NoError(t, db.Get(&domain, "SELECT generated_email_domain FROM "+db.T("leads")+" WHERE id = 1"))
	require.Equal(t, "Example.org", domain.String)
	require.NoError(t, db.Get(&domain, "SELECT generated_email_domain FROM "+db.T("leads")+" WHERE id = 2"))
	require.False(t, domain.Valid)

	db.MustExec(t, "INSERT INTO `{p}email_stats` (email_address, date_sent, is_read, is_failed, viewed_in_browser) "+
		"VALUES ('jane@example.org', '2024-03-05 23:59:59', 0, 0, 0)")
	var day string
	require.NoError(t, db.Get(&day, "SELECT CAST(generated_sent_date AS CHAR) FROM "+db.T("email_stats")))
	require.Equal(t, "2024-03-05", day)
}

func TestSchemaColumnTypes(t *testing.T) {
	db := newSchemaDB(t)
	cols := schemaColumns(t, db)
	const json = "json" // MariaDB reports its JSON alias as longtext
	tests := []struct {
		column   string
		typ      string
		nullable bool
	}{
		{"leads.id", "bigint unsigned", false},
		{"leads.points", "int", false},
		{"leads.email", "varchar(191)", true},
		{"leads.mobile", "varchar(191)", true},
		{"leads.attribution", "double", true},
		{"leads.preferred_locale", "varchar(191)", true},
		{"leads.owner_id", "int unsigned", true},
		{"companies.id", "int", false},
		{"companies.companynumber_of_employees", "double", true},
		{"companies.companydescription", "longtext", true},
		{"companies_leads.company_id", "int", false},
		{"companies_leads.is_primary", "tinyint(1)", true},
		{"messages.id", "int unsigned", false},
		{"messages.is_published", "tinyint(1)", false},
		{"messages.date_added", "datetime", true},
		{"message_channels.channel_id", "int", true},
		{"message_channels.properties", json, false},
		{"message_channels.is_enabled", "tinyint(1)", false},
		{"lead_frequencyrules.frequency_number", "smallint", true},
		{"lead_frequencyrules.frequency_time", "varchar(25)", true},
		{"lead_frequencyrules.preferred_channel", "tinyint(1)", false},
		{"lead_frequencyrules.date_added", "datetime", false},
		{"lead_donotcontact.lead_id", "bigint unsigned", true},
		{"lead_donotcontact.reason", "smallint", false},
		{"lead_donotcontact.channel_id", "int", true},
		{"message_queue.id", "bigint unsigned", false},
		{"message_queue.channel_id", "int", false},
		{"message_queue.event_id", "int unsigned", true},
		{"message_queue.priority", "smallint", false},
		{"message_queue.options", "longtext", true},
		{"emails.headers", json, false},
		{"emails.lang", "varchar(191)", false},
		{"emails.date_added", "datetime", true},
		{"emails.subject", "longtext", true},
		{"emails.sent_count", "int", false},
		{"email_copies.id", "varchar(32)", false},
		{"email_stats.id", "bigint unsigned", false},
		{"email_stats.email_id", "int unsigned", true},
		{"email_stats.email_address", "varchar(191)", false},
		{"email_stats.copy_id", "varchar(32)", true},
		{"email_stats.date_sent", "datetime", false},
		{"sms_messages.message", "longtext", false},
		{"sms_messages.sent_count", "int", false},
		{"sms_message_stats.details", json, false},
		{"sms_message_stats.is_failed", "tinyint(1)", true},
		{"push_notifications.mobile_settings", "longtext", false},
		{"push_notification_stats.is_clicked", "tinyint(1)", false},
		{"push_ids.id", "int", false},
		{"push_ids.lead_id", "bigint unsigned", true},
		{"tweets.text", "varchar(191)", false},
		{"tweet_stats.id", "int unsigned", false},
		{"tweet_stats.response_details", json, true},
		{"plugins.bundle", "varchar(50)", false},
		{"plugin_integration_settings.id", "int", false},
		{"plugin_integration_settings.plugin_id", "int unsigned", true},
		{"plugin_integration_settings.api_keys", "longtext", false},
		{"campaigns.version", "int unsigned", false},
		{"campaign_events.type", "varchar(50)", false},
		{"campaign_events.trigger_interval_unit", "varchar(1)", true},
		{"campaign_events.trigger_hour", "time", true},
		{"campaign_events.failed_count", "int", false},
		{"campaign_lead_event_log.id", "bigint unsigned", false},
		{"campaign_lead_event_log.campaign_id", "int unsigned", true},
		{"campaign_lead_event_log.rotation", "int", false},
		{"campaign_lead_event_failed_log.log_id", "bigint unsigned", false},
		{"categories.color", "varchar(7)", true},
		{"ip_addresses.ip_address", "varchar(45)", false},
	}
	for _, tc := range tests {
		t.Run(tc.column, func(t *testing.T) {
			c, ok := cols[tc.column]
			require.True(t, ok, "column %s missing", tc.column)
			got := normType(c.Type)
			if tc.typ == json {
				require.Contains(t, []string{"json", "longtext"}, got)
			} else {
				require.Equal(t, tc.typ, got)
			}
			require.Equal(t, tc.nullable, c.Nullable == "YES")
		})
	}
}

func TestSchemaArrayColumnsAreCommented(t *testing.T) {
	db := newSchemaDB(t)
	var got []string
	for key, c := range schemaColumns(t, db) {
		if c.Comment == "(DC2Type:array)" {
			require.Equal(t, "longtext", normType(c.Type), key)
			got = append(got, key)
		}
	}
	require.ElementsMatch(t, []string{
		"users.preferences", "ip_addresses.ip_details", "leads.internal", "leads.social_cache",
		"companies.social_cache", "campaigns.canvas_settings", "campaign_events.properties",
		"campaign_events.trigger_restricted_dow", "campaign_lead_event_log.metadata",
		"message_queue.options", "emails.content", "emails.utm_tags", "emails.variant_settings",
		"emails.dynamic_content", "email_stats.tokens", "email_stats.open_details",
		"sms_message_stats.tokens", "push_notifications.utm_tags",
		"push_notifications.mobile_settings", "push_notification_stats.tokens",
		"push_notification_stats.click_details", "plugin_integration_settings.supported_features",
		"plugin_integration_settings.api_keys", "plugin_integration_settings.feature_settings",
	}, got)
}

func TestSchemaIndexes(t *testing.T) {
	db := newSchemaDB(t)
	type stat struct {
		Table     string `db:"tbl"`
		Index     string `db:"idx"`
		NonUnique int    `db:"non_unique"`
		Column    string `db:"col"`
	}
	var rows []stat
	require.NoError(t, db.Select(&rows, `
		SELECT TABLE_NAME AS tbl, INDEX_NAME AS idx, NON_UNIQUE AS non_unique, COLUMN_NAME AS col
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?
		ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`, db.Name))
	tables := prefixedTables(db.Prefix)
	// "table index" (both unprefixed) -> "unique? (col, col)"
	got := map[string]string{}
	for _, r := range rows {
		table, ok := tables[r.Table]
		if !ok {
			continue
		}
		name := r.Index
		if name != "PRIMARY" {
			require.True(t, strings.HasPrefix(name, db.Prefix), "%s.%s", r.Table, name)
			name = strings.TrimPrefix(name, db.Prefix)
		}
		key := table + " " + name
		if _, seen := got[key]; !seen {
			kind := "KEY"
			if r.NonUnique == 0 {
				kind = "UNIQUE"
			}
			got[key] = kind + " ("
		} else {
			got[key] += ", "
		}
		got[key] += r.Column
	}
	for k := range got {
		got[k] += ")"
	}
	want := map[string]string{
		"messages date_message_added":                               "KEY (date_added)",
		"message_channels channel_index":                            "UNIQUE (message_id, channel)",
		"message_channels channel_entity_index":                     "KEY (channel, channel_id)",
		"message_channels channel_enabled_index":                    "KEY (channel, is_enabled)",
		"lead_frequencyrules channel_frequency":                     "KEY (channel)",
		"lead_frequencyrules idx_frequency_date_added":              "KEY (lead_id, date_added)",
		"lead_donotcontact leadid_reason_channel":                   "KEY (lead_id, channel, reason)",
		"lead_donotcontact dnc_reason_search":                       "KEY (reason)",
		"lead_donotcontact dnc_date_added":                          "KEY (date_added)",
		"message_queue message_status_search":                       "KEY (status)",
		"message_queue message_date_sent":                           "KEY (date_sent)",
		"message_queue message_scheduled_date":                      "KEY (scheduled_date)",
		"message_queue message_priority":                            "KEY (priority)",
		"message_queue message_success":                             "KEY (success)",
		"message_queue message_channel_search":                      "KEY (channel, channel_id)",
		"message_queue message_queue_date_published":                "KEY (date_published)",
		"email_stats stat_email_search":                             "KEY (email_id, lead_id)",
		"email_stats stat_email_search2":                            "KEY (lead_id, email_id)",
		"email_stats stat_email_failed_search":                      "KEY (is_failed)",
		"email_stats is_read_date_sent":                             "KEY (is_read, date_sent)",
		"email_stats stat_email_hash_search":                        "KEY (tracking_hash)",
		"email_stats stat_email_source_search":                      "KEY (source, source_id)",
		"email_stats email_date_sent":                               "KEY (date_sent)",
		"email_stats email_date_read_lead":                          "KEY (date_read, lead_id)",
		"email_stats stat_email_lead_id_date_sent":                  "KEY (lead_id, date_sent)",
		"email_stats stat_email_email_id_is_read":                   "KEY (email_id, is_read)",
		"email_stats generated_sent_date_email_id":                  "KEY (generated_sent_date, email_id)",
		"sms_message_stats stat_sms_search":                         "KEY (sms_id, lead_id)",
		"sms_message_stats stat_sms_hash_search":                    "KEY (tracking_hash)",
		"sms_message_stats stat_sms_source_search":                  "KEY (source, source_id)",
		"sms_message_stats stat_sms_failed_search":                  "KEY (is_failed)",
		"push_notification_stats stat_notification_search":          "KEY (notification_id, lead_id)",
		"push_notification_stats stat_notification_clicked_search":  "KEY (is_clicked)",
		"push_notification_stats stat_notification_hash_search":     "KEY (tracking_hash)",
		"push_notification_stats stat_notification_source_search":   "KEY (source, source_id)",
		"campaign_lead_event_log campaign_rotation":                 "UNIQUE (event_id, lead_id, rotation)",
		"campaign_lead_event_log campaign_event_upcoming_search":    "KEY (is_scheduled, lead_id)",
		"campaign_lead_event_log campaign_event_schedule_counts":    "KEY (campaign_id, is_scheduled, trigger_date)",
		"campaign_lead_event_log campaign_date_triggered":           "KEY (date_triggered)",
		"campaign_lead_event_log campaign_leads":                    "KEY (lead_id, campaign_id, rotation)",
		"campaign_lead_event_log campaign_log_channel":              "KEY (channel, channel_id, lead_id)",
		"campaign_lead_event_log campaign_actions":                  "KEY (campaign_id, event_id, date_triggered)",
		"campaign_lead_event_log campaign_stats":                    "KEY (campaign_id, date_triggered, event_id, non_action_path_taken)",
		"campaign_lead_event_log campaign_trigger_date_order":       "KEY (trigger_date)",
		"campaign_lead_event_failed_log PRIMARY":                    "UNIQUE (log_id)",
		"campaign_lead_event_failed_log campaign_event_failed_date": "KEY (date_added)",
		"campaign_events campaign_event_search":                     "KEY (type, event_type)",
		"campaign_events campaign_event_channel":                    "KEY (channel, channel_id)",
		"leads generated_email_domain":                              "KEY (generated_email_domain)",
		"leads lead_date_added":                                     "KEY (date_added)",
		"leads contact_attribution":                                 "KEY (attribution, attribution_date)",
		"companies company_match":                                   "KEY (companyname, companycity, companycountry, companystate)",
		"companies_leads PRIMARY":                                   "UNIQUE (company_id, lead_id)",
		"lead_ips_xref PRIMARY":                                     "UNIQUE (lead_id, ip_id)",
		"plugins unique_bundle":                                     "UNIQUE (bundle)",
		"tweet_stats stat_tweet_search":                             "KEY (tweet_id, lead_id)",
		"categories category_alias_search":                          "KEY (alias)",
		"ip_addresses ip_search":                                    "KEY (ip_address)",
	}
	for key, def := range want {
		require.Equal(t, def, got[key], key)
	}
}

func TestSchemaForeignKeys(t *testing.T) {
	db := newSchemaDB(t)
	type fk struct {
		Table      string `db:"tbl"`
		Column     string `db:"col"`
		RefTable   string `db:"ref_tbl"`
		RefColumn  string `db:"ref_col"`
		DeleteRule string `db:"delete_rule"`
	}
	var rows []fk
	require.NoError(t, db.Select(&rows, `
		SELECT k.TABLE_NAME AS tbl, k.COLUMN_NAME AS col, k.REFERENCED_TABLE_NAME AS ref_tbl,
		       k.REFERENCED_COLUMN_NAME AS ref_col, r.DELETE_RULE AS delete_rule
		FROM information_schema.KEY_COLUMN_USAGE k
		JOIN information_schema.REFERENTIAL_CONSTRAINTS r
		  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
		 AND r.TABLE_NAME = k.TABLE_NAME
		WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL`, db.Name))
	tables := prefixedTables(db.Prefix)
	var got []string
	for _, r := range rows {
		rule := r.DeleteRule
		if rule == "RESTRICT" || rule == "NO ACTION" { // no ON DELETE clause: MariaDB says RESTRICT, MySQL NO ACTION
			rule = "none"
		}
		got = append(got, fmt.Sprintf("%s.%s -> %s.%s %s", tables[r.Table], r.Column, tables[r.RefTable], r.RefColumn, rule))
	}
	require.ElementsMatch(t, []string{
		"leads.owner_id -> users.id SET NULL",
		"lead_ips_xref.lead_id -> leads.id CASCADE",
		"lead_ips_xref.ip_id -> ip_addresses.id CASCADE",
		"companies.owner_id -> users.id SET NULL",
		"companies_leads.company_id -> companies.id CASCADE",
		"companies_leads.lead_id -> leads.id CASCADE",
		"messages.category_id -> categories.id SET NULL",
		"message_channels.message_id -> messages.id CASCADE",
		"lead_frequencyrules.lead_id -> leads.id CASCADE",
		"lead_donotcontact.lead_id -> leads.id CASCADE",
		"campaigns.category_id -> categories.id SET NULL",
		"campaign_events.campaign_id -> campaigns.id CASCADE",
		"campaign_events.parent_id -> campaign_events.id none",
		"campaign_lead_event_log.event_id -> campaign_events.id none",
		"campaign_lead_event_log.lead_id -> leads.id CASCADE",
		"campaign_lead_event_log.campaign_id -> campaigns.id none",
		"campaign_lead_event_log.ip_id -> ip_addresses.id SET NULL",
		"campaign_lead_event_failed_log.log_id -> campaign_lead_event_log.id CASCADE",
		"message_queue.event_id -> campaign_events.id CASCADE",
		"message_queue.lead_id -> leads.id CASCADE",
		"emails.category_id -> categories.id SET NULL",
		"emails.translation_parent_id -> emails.id CASCADE",
		"emails.variant_parent_id -> emails.id CASCADE",
		"email_stats.email_id -> emails.id SET NULL",
		"email_stats.lead_id -> leads.id SET NULL",
		"email_stats.ip_id -> ip_addresses.id SET NULL",
		"email_stats.copy_id -> email_copies.id SET NULL",
		"sms_messages.category_id -> categories.id SET NULL",
		"sms_message_stats.sms_id -> sms_messages.id SET NULL",
		"sms_message_stats.lead_id -> leads.id SET NULL",
		"sms_message_stats.ip_id -> ip_addresses.id SET NULL",
		"push_notifications.category_id -> categories.id SET NULL",
		"push_notification_stats.notification_id -> push_notifications.id SET NULL",
		"push_notification_stats.lead_id -> leads.id SET NULL",
		"push_notification_stats.ip_id -> ip_addresses.id SET NULL",
		"push_ids.lead_id -> leads.id SET NULL",
		"plugin_integration_settings.plugin_id -> plugins.id CASCADE",
		"tweets.category_id -> categories.id SET NULL",
		"tweet_stats.tweet_id -> tweets.id SET NULL",
		"tweet_stats.lead_id -> leads.id SET NULL",
	}, got)
}

// TestSchemaDeleteContact checks the ON DELETE behaviour a contact deletion
// triggers: preferences, DNC and queue rows go, stats keep their row.
func TestSchemaDeleteContact(t *testing.T) {
	db := newSchemaDB(t)
	db.MustExec(t, "INSERT INTO `{p}leads` (id, is_published, points, email) VALUES (7, 1, 0, 'a@example.org')")
	db.MustExec(t, "INSERT INTO `{p}lead_frequencyrules` (lead_id, date_added, channel, preferred_channel) VALUES (7, '2024-01-01 00:00:00', 'email', 1)")
	db.MustExec(t, "INSERT INTO `{p}lead_donotcontact` (lead_id, date_added, reason, channel) VALUES (7, '2024-01-01 00:00:00', 1, 'sms')")
	db.MustExec(t, "INSERT INTO `{p}message_queue` (lead_id, channel, channel_id, priority, max_attempts, attempts, success, status) VALUES (7, 'sms', 1, 2, 3, 0, 0, 'pending')")
	db.MustExec(t, "INSERT INTO `{p}email_stats` (lead_id, email_address, date_sent, is_read, is_failed, viewed_in_browser) VALUES (7, 'a@example.org', '2024-01-01 00:00:00', 0, 0, 0)")
	db.MustExec(t, "INSERT INTO `{p}sms_message_stats` (lead_id, date_sent, details) VALUES (7, '2024-01-01 00:00:00', '[]')")
	db.MustExec(t, "DELETE FROM `{p}leads` WHERE id = 7")

	require.Zero(t, db.Count(t, "lead_frequencyrules", ""))
	require.Zero(t, db.Count(t, "lead_donotcontact", ""))
	require.Zero(t, db.Count(t, "message_queue", ""))
	require.Equal(t, 1, db.Count(t, "email_stats", "lead_id IS NULL"))
	require.Equal(t, 1, db.Count(t, "sms_message_stats", "lead_id IS NULL"))
}

func TestSchemaJSONColumnsRejectInvalidJSON(t *testing.T) {
	db := newSchemaDB(t)
	db.MustExec(t, "INSERT INTO `{p}messages` (id, is_published, name) VALUES (1, 1, 'm')")
	_, err := db.Exec("INSERT INTO " + db.T("message_channels") +
		" (message_id, channel, properties, is_enabled) VALUES (1, 'email', 'not json', 1)")
	require.Error(t, err)
	_, err = db.Exec("INSERT INTO " + db.T("sms_message_stats") +
		" (date_sent, details) VALUES ('2024-01-01 00:00:00', '{\"failed\":')")
	require.Error(t, err)
	db.MustExec(t, "INSERT INTO `{p}sms_message_stats` (date_sent, details) VALUES ('2024-01-01 00:00:00', '{\"failed\":[\"x\"]}')")
}

// TestSchemaStrictModeRequiresNotNullColumns inserts one row into every table
// under STRICT_TRANS_TABLES: leaving out any NOT NULL column fails (Mautic's
// tables have no defaults), giving them all succeeds.
func TestSchemaStrictModeRequiresNotNullColumns(t *testing.T) {
	db := newSchemaDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
	require.NoError(t, err)

	const ts = "2024-05-06 07:08:09"
	// In foreign-key order. "id" pins ids the later rows refer to; every
	// other key is a NOT NULL column without default.
	rows := []struct {
		table string
		row   map[string]any
	}{
		{"users", map[string]any{"id": 1, "is_published": 1, "username": "admin", "password": "x", "first_name": "A", "last_name": "B", "email": "admin@example.org"}},
		{"categories", map[string]any{"id": 1, "is_published": 1, "title": "News", "alias": "news", "bundle": "email"}},
		{"ip_addresses", map[string]any{"id": 1, "ip_address": "127.0.0.1"}},
		{"leads", map[string]any{"id": 1, "is_published": 1, "points": 0}},
		{"lead_ips_xref", map[string]any{"lead_id": 1, "ip_id": 1}},
		{"companies", map[string]any{"id": 1, "is_published": 1}},
		{"companies_leads", map[string]any{"company_id": 1, "lead_id": 1, "date_added": ts}},
		{"messages", map[string]any{"id": 1, "is_published": 1, "name": "MM"}},
		{"message_channels", map[string]any{"message_id": 1, "channel": "email", "properties": "[]", "is_enabled": 1}},
		{"lead_frequencyrules", map[string]any{"lead_id": 1, "date_added": ts, "channel": "email", "preferred_channel": 1}},
		{"lead_donotcontact", map[string]any{"date_added": ts, "reason": 1, "channel": "email"}},
		{"campaigns", map[string]any{"id": 1, "is_published": 1, "name": "C", "allow_restart": 0}},
		{"campaign_events", map[string]any{"id": 1, "campaign_id": 1, "name": "E", "type": "message.send", "event_type": "action", "event_order": 1, "properties": "a:0:{}", "failed_count": 0}},
		{"campaign_lead_event_log", map[string]any{"id": 1, "event_id": 1, "lead_id": 1, "rotation": 1, "is_scheduled": 0, "system_triggered": 0}},
		{"campaign_lead_event_failed_log", map[string]any{"log_id": 1, "date_added": ts}},
		{"message_queue", map[string]any{"lead_id": 1, "channel": "sms", "channel_id": 1, "priority": 2, "max_attempts": 3, "attempts": 0, "success": 0, "status": "pending"}},
		{"emails", map[string]any{"id": 1, "is_published": 1, "name": "E", "read_count": 0, "sent_count": 0, "variant_sent_count": 0, "variant_read_count": 0, "revision": 1, "lang": "en", "headers": "[]"}},
		{"email_copies", map[string]any{"id": "0123456789abcdef0123456789abcdef", "date_created": ts}},
		{"email_stats", map[string]any{"email_address": "a@example.org", "date_sent": ts, "is_read": 0, "is_failed": 0, "viewed_in_browser": 0}},
		{"sms_messages", map[string]any{"id": 1, "is_published": 1, "name": "S", "lang": "en", "message": "hi", "sent_count": 0}},
		{"sms_message_stats", map[string]any{"date_sent": ts, "details": "[]"}},
		{"push_notifications", map[string]any{"id": 1, "is_published": 1, "name": "P", "lang": "en", "heading": "h", "message": "m", "read_count": 0, "sent_count": 0, "mobile": 0, "mobile_settings": "a:0:{}"}},
		{"push_notification_stats", map[string]any{"date_sent": ts, "is_clicked": 0}},
		{"push_ids", map[string]any{"push_id": "player", "enabled": 1, "mobile": 0}},
		{"plugins", map[string]any{"id": 1, "name": "Social", "is_missing": 0, "bundle": "MauticSocialBundle"}},
		{"plugin_integration_settings", map[string]any{"name": "Twilio", "is_published": 1, "api_keys": "a:0:{}"}},
		{"tweets", map[string]any{"id": 1, "is_published": 1, "name": "T", "text": "hello"}},
		{"tweet_stats", map[string]any{"handle": "@jane"}},
	}
	var covered []string
	for _, r := range rows {
		covered = append(covered, r.table)
	}
	require.ElementsMatch(t, wantSchemaTables, covered, "every table has a row")

	required := map[string][]string{}
	for _, c := range schemaColumns(t, db) {
		if c.Nullable == "NO" && !c.Default.Valid && !isAutoIncrement(c) && !isGenerated(c) {
			required[c.Table] = append(required[c.Table], c.Name)
		}
	}

	insert := func(table string, row map[string]any, skip string) error {
		var cols []string
		for c := range row {
			if c != skip {
				cols = append(cols, c)
			}
		}
		sort.Strings(cols)
		args := make([]any, len(cols))
		for i, c := range cols {
			args[i] = row[c]
		}
		q := "INSERT INTO " + db.T(table) + " () VALUES ()"
		if len(cols) > 0 {
			q = "INSERT INTO " + db.T(table) + " (`" + strings.Join(cols, "`, `") + "`) VALUES (" +
				strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		}
		_, err := conn.ExecContext(ctx, q, args...)
		return err
	}

	for _, r := range rows {
		var given []string
		for c := range r.row {
			if c == "id" && !slices.Contains(required[r.table], "id") {
				continue // an AUTO_INCREMENT id, given to pin it
			}
			given = append(given, c)
		}
		require.ElementsMatch(t, required[r.table], given, "NOT NULL columns of %s", r.table)
		for _, c := range required[r.table] {
			err := insert(r.table, r.row, c)
			var me *mysql.MySQLError
			require.True(t, errors.As(err, &me), "%s without %s: want an error, got %v", r.table, c, err)
			require.Equal(t, uint16(1364), me.Number, "%s without %s: %v", r.table, c, err)
			require.Contains(t, me.Message, "'"+c+"'")
		}
		require.NoError(t, insert(r.table, r.row, ""), r.table)
	}

	var version int
	require.NoError(t, db.Get(&version, "SELECT version FROM "+db.T("campaigns")+" WHERE id = 1"))
	require.Equal(t, 1, version, "campaigns.version defaults to 1")
}
