package bridge

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

// docFiles returns README.md and docs/*.md with their text.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	names = append(names, "../README.md")
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		require.NoError(t, err)
		out[n] = string(b)
	}
	require.Greater(t, len(out), 4, "the docs are found")
	return out
}

// TestDocumentedEndpointsExist: every "METHOD /path" of the sidecar that
// README.md and docs/ mention is a route of the server with that method
// (paths of Mautic's own API, /api/..., are not ours).
func TestDocumentedEndpointsExist(t *testing.T) {
	h := newHarness(t)
	engine, ok := h.app.Handler().(*gin.Engine)
	require.True(t, ok)
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	mention := regexp.MustCompile(`\b(GET|POST|PUT|DELETE|PATCH) +(/[A-Za-z0-9_/{}:.-]*)`)
	seen := 0
	for name, text := range docFiles(t) {
		for _, m := range mention.FindAllStringSubmatch(text, -1) {
			path := strings.TrimSuffix(m[2], ".")
			if strings.HasPrefix(path, "/api/") {
				continue
			}
			path = param.ReplaceAllString(path, ":$1")
			seen++
			require.Truef(t, routes[m[1]+" "+path], "%s mentions %s %s, which the server does not serve (routes: %v)", name, m[1], path, routes)
		}
	}
	require.Greater(t, seen, 10, "endpoints are found in the docs")
}
