package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocumentedVariablesAndCommandsExist: every environment variable
// that README.md and docs/ mention is a variable of the configuration, a
// family of them (SIDECAR_BREAKER_*, CHANNEL_<KEY>_WEBHOOK_URL), or one the
// test scripts, the Makefile or the Docker stack read; every `sidecar X`
// command they show is a command of the binary.
func TestDocumentedVariablesAndCommandsExist(t *testing.T) {
	names, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	names = append(names, "../../README.md")
	docs := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		docs[n] = string(b)
	}

	config := map[string]bool{}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		if env := ct.Field(i).Tag.Get("env"); env != "" {
			config[env] = true
		}
	}
	require.True(t, config["SIDECAR_TOKEN"] && config["MAUTIC_DB_DSN"], "the configuration's variables are found")
	// Read outside the configuration: by scripts, the Makefile, the test
	// suite or the Docker stack. Each must appear there.
	var elsewhere strings.Builder
	for _, glob := range []string{"../../Makefile", "../../scripts/*", "../../faults/*.go", "../../docker/*", "../../docker/*/*"} {
		files, err := filepath.Glob(glob)
		require.NoError(t, err)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				elsewhere.Write(b)
			}
		}
	}
	variable := regexp.MustCompile(`\b(?:SIDECAR|MAUTIC|SMTP|TWILIO|ONESIGNAL|X|SMS|CHANNEL|MYSQL)_[A-Z0-9_<>]*[A-Z0-9>]_?`)
	checked := 0
	for name, text := range docs {
		for _, v := range variable.FindAllString(text, -1) {
			switch {
			case config[v]:
			case strings.Contains(v, "<KEY>"):
				// CHANNEL_<KEY>_WEBHOOK_URL and its kin: a family read by
				// the webhook senders (channels/webhook).
				require.Regexp(t, `^CHANNEL_<KEY>_WEBHOOK_(URL|SECRET|SECRET_FILE)$`, v, "%s: unknown family %s", name, v)
			case strings.HasSuffix(v, "_"):
				found := false
				for c := range config {
					found = found || strings.HasPrefix(c, v)
				}
				require.Truef(t, found, "%s mentions the family %s*, which has no variable", name, v)
			case regexp.MustCompile(`^CHANNEL_[A-Z0-9_]+_WEBHOOK_(URL|SECRET|SECRET_FILE)$`).MatchString(v):
			default:
				require.Containsf(t, elsewhere.String(), v, "%s mentions %s, which neither the configuration nor the scripts read", name, v)
			}
			checked++
		}
	}
	require.Greater(t, checked, 50)

	commands := regexp.MustCompile(`(?m)(?:\x60|\$ |bin/)sidecar ([a-z]+)\b`)
	known := map[string]bool{}
	for _, line := range strings.Split(usage, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(line, "  ") {
			known[f[0]] = true
		}
	}
	require.True(t, known["serve"] && known["probe"], "the usage text lists the commands: %v", known)
	seen := 0
	for name, text := range docs {
		for _, m := range commands.FindAllStringSubmatch(text, -1) {
			if m[1] == "schema" { // "sidecar schema (...)": the output of migrate and check
				continue
			}
			seen++
			require.Truef(t, known[m[1]], "%s shows the command `sidecar %s`, which does not exist (commands: %v)", name, m[1], known)
		}
	}
	require.Greater(t, seen, 10)
}

// TestDocumentedDefaultsMatch: the configuration tables of README.md and
// the operator guide give each variable's default as the Config's
// envDefault tag has it ("empty" and "none" for no default).
func TestDocumentedDefaultsMatch(t *testing.T) {
	defaults := map[string]string{}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		if env := ct.Field(i).Tag.Get("env"); env != "" {
			defaults[env] = ct.Field(i).Tag.Get("envDefault")
		}
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\| ([^|]+) \\|")
	checked := 0
	for _, name := range []string{"../../README.md", "../../docs/operator-guide.md"} {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		for _, m := range row.FindAllStringSubmatch(string(b), -1) {
			want, ok := defaults[m[1]]
			require.Truef(t, ok, "%s documents %s, which is not a variable of the configuration", name, m[1])
			got := strings.TrimSpace(m[2])
			if got == "empty" || got == "none" {
				got = ""
			} else {
				got = strings.Trim(got, "`")
			}
			require.Equalf(t, want, got, "%s: the default of %s", name, m[1])
			checked++
		}
	}
	require.Greater(t, checked, 40, "the configuration tables are found")
}
