package mautic

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// RequiredColumns lists, per Mautic table (unprefixed), the columns the
// sidecar reads or writes. `sidecar check` verifies them.
var RequiredColumns = map[string][]string{
	"leads":            {"id", "email", "mobile", "phone", "twitter", "firstname", "lastname"},
	"companies":        {"id"},
	"companies_leads":  {"company_id", "lead_id", "is_primary"},
	"categories":       {"id", "is_published"},
	"messages":         {"id", "name", "is_published"},
	"message_channels": {"id", "message_id", "channel", "channel_id", "properties", "is_enabled"},
	"lead_frequencyrules": {"id", "lead_id", "channel", "frequency_number", "frequency_time", "preferred_channel",
		"pause_from_date", "pause_to_date"},
	"lead_donotcontact": {"id", "lead_id", "date_added", "reason", "channel", "channel_id", "comments"},
	"message_queue": {"id", "channel", "channel_id", "event_id", "lead_id", "priority", "max_attempts", "attempts", "success",
		"status", "date_published", "scheduled_date", "last_attempt", "date_sent", "options"},
	"emails": {"id", "name", "subject", "custom_html", "plain_text", "preheader_text", "from_address", "from_name",
		"reply_to_address", "bcc_address", "headers", "lang", "variant_start_date", "is_published", "publish_up", "publish_down",
		"category_id", "sent_count", "variant_sent_count"},
	"email_copies":      {"id", "date_created", "body", "body_text", "subject"},
	"email_stats":       emailStatCols,
	"sms_messages":      {"id", "name", "message", "is_published", "publish_up", "publish_down", "category_id", "sent_count"},
	"sms_message_stats": smsStatCols,
	"push_notifications": {"id", "name", "heading", "message", "url", "button", "mobile", "mobile_settings", "is_published",
		"sent_count"},
	"push_notification_stats":     pushStatCols,
	"push_ids":                    {"id", "push_id", "lead_id", "enabled", "mobile"},
	"plugin_integration_settings": {"id", "name", "is_published", "supported_features", "api_keys", "feature_settings"},
	"campaign_events":             {"id"},
}

// OptionalTables are plugin tables: when missing, only their channel is
// unavailable (tweets need Mautic's Social plugin).
var OptionalTables = map[string][]string{
	"tweets":      {"id", "name", "text", "is_published", "sent_count"},
	"tweet_stats": tweetStatCols,
}

// SchemaProblem is one missing table or column.
type SchemaProblem struct {
	Table    string // prefixed name
	Column   string // "" when the whole table is missing
	Optional bool
}

func (p SchemaProblem) String() string {
	what := "missing table " + p.Table
	if p.Column != "" {
		what = "missing column " + p.Table + "." + p.Column
	}
	if p.Optional {
		what += " (optional: tweets are unavailable)"
	}
	return what
}

// CheckSchema compares the database with RequiredColumns and
// OptionalTables and returns every missing table or column, sorted.
func (db *DB) CheckSchema(ctx context.Context) ([]SchemaProblem, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return nil, fmt.Errorf("read information_schema: %w", err)
	}
	defer rows.Close()
	have := map[string]map[string]bool{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, fmt.Errorf("read information_schema: %w", err)
		}
		if have[t] == nil {
			have[t] = map[string]bool{}
		}
		have[t][strings.ToLower(c)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read information_schema: %w", err)
	}
	var out []SchemaProblem
	check := func(spec map[string][]string, optional bool) {
		for table, cols := range spec {
			name := db.prefix + table
			tc, ok := have[name]
			if !ok {
				out = append(out, SchemaProblem{Table: name, Optional: optional})
				continue
			}
			for _, c := range cols {
				if !tc[c] {
					out = append(out, SchemaProblem{Table: name, Column: c, Optional: optional})
				}
			}
		}
	}
	check(RequiredColumns, false)
	check(OptionalTables, true)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Column < out[j].Column
	})
	return out, nil
}

// HasTweets reports whether the optional tweet tables are complete.
func HasTweets(problems []SchemaProblem) bool {
	for _, p := range problems {
		if p.Optional {
			return false
		}
	}
	return true
}

// ServerInfo describes the database server.
type ServerInfo struct {
	Version string // as SELECT VERSION() answers
	MariaDB bool
	Major   int
	Minor   int
	Patch   int
}

// SkipLocked reports whether the server supports FOR UPDATE SKIP LOCKED:
// MariaDB 10.6 and later, MySQL 8.0.1 and later.
func (s ServerInfo) SkipLocked() bool {
	if s.MariaDB {
		return s.Major > 10 || (s.Major == 10 && s.Minor >= 6)
	}
	return s.Major > 8 || (s.Major == 8 && (s.Minor > 0 || s.Patch >= 1))
}

func (s ServerInfo) String() string {
	flavor := "MySQL"
	if s.MariaDB {
		flavor = "MariaDB"
	}
	return fmt.Sprintf("%s %d.%d.%d (%s)", flavor, s.Major, s.Minor, s.Patch, s.Version)
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// ParseServerVersion reads a VERSION() string.
func ParseServerVersion(v string) (ServerInfo, error) {
	si := ServerInfo{Version: v, MariaDB: strings.Contains(strings.ToLower(v), "mariadb")}
	// MariaDB 10.x replication builds used to report "5.5.5-10.x.y-MariaDB".
	s := strings.TrimPrefix(v, "5.5.5-")
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return si, fmt.Errorf("unrecognised server version %q", v)
	}
	si.Major, _ = strconv.Atoi(m[1])
	si.Minor, _ = strconv.Atoi(m[2])
	si.Patch, _ = strconv.Atoi(m[3])
	return si, nil
}

// Server returns the server's version and flavour.
func (db *DB) Server(ctx context.Context) (ServerInfo, error) {
	var v string
	if err := db.QueryRowxContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return ServerInfo{}, fmt.Errorf("server version: %w", err)
	}
	return ParseServerVersion(v)
}
