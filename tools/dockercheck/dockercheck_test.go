package dockercheck

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const (
	mauticImage   = "mautic/mautic:5-apache"
	sidecarBinary = "/usr/local/bin/sidecar" // where the image puts the binary
	sidecarPort   = "8080"                   // SIDECAR_LISTEN inside the container
)

// The services of docker/compose.yaml. One-shot services run to completion
// and are waited for with service_completed_successfully; every other
// service runs for good and has a healthcheck.
var (
	mauticRoles = map[string]string{ // service -> DOCKER_MAUTIC_ROLE
		"mautic_web":    "mautic_web",
		"mautic_cron":   "mautic_cron",
		"mautic_worker": "mautic_worker",
	}
	oneShot      = map[string]bool{"mautic_install": true, "sidecar_migrate": true}
	wantServices = []string{"db", "mailpit", "mautic_cron", "mautic_install", "mautic_web", "mautic_worker", "sidecar", "sidecar_migrate"}
	// Every dependency of the stack: service -> dependency -> condition.
	wantDependsOn = map[string]map[string]string{
		"mautic_web":      {"db": types.ServiceConditionHealthy},
		"mautic_install":  {"db": types.ServiceConditionHealthy, "mautic_web": types.ServiceConditionHealthy},
		"mautic_cron":     {"mautic_web": types.ServiceConditionHealthy, "mautic_install": types.ServiceConditionCompletedSuccessfully},
		"mautic_worker":   {"mautic_web": types.ServiceConditionHealthy, "mautic_install": types.ServiceConditionCompletedSuccessfully, "mailpit": types.ServiceConditionHealthy},
		"sidecar_migrate": {"db": types.ServiceConditionHealthy, "mautic_install": types.ServiceConditionCompletedSuccessfully},
		"sidecar":         {"sidecar_migrate": types.ServiceConditionCompletedSuccessfully, "mailpit": types.ServiceConditionHealthy},
	}
	// The only published ports: service -> container port -> default host port.
	wantPorts = map[string]map[uint32]string{
		"mautic_web": {80: "8080"},
		"mailpit":    {8025: "8025"},
		"sidecar":    {8080: "8081"},
	}
	// Mautic's persistent directories, shared by every Mautic container.
	mauticVolumes = []string{
		"/var/www/html/config",
		"/var/www/html/var/logs",
		"/var/www/html/docroot/media/files",
		"/var/www/html/docroot/media/images",
	}
	// What the sidecar's containers need in their environment.
	sidecarEnv = []string{"MAUTIC_DB_DSN", "MAUTIC_SITE_URL", "MAUTIC_SECRET_KEY", "SIDECAR_TOKEN", "SMTP_URL", "SMTP_FROM"}
	// The go-sql-driver DSN form the stack uses: user:password@tcp(host:port)/dbname.
	dsnRE = regexp.MustCompile(`^([^:@/]+):(.*)@tcp\(([^():]+):(\d+)\)/([^?/]+)(\?.*)?$`)
)

// repoRoot returns the repository's root, two levels above this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/mautic-mm/sidecar\n")) {
		t.Fatalf("%s is not the sidecar's repository (go.mod: %v)", root, err)
	}
	return root
}

// loadProject loads docker/compose.yaml as `docker compose` does: the OS
// environment, then the env files (docker/.env when none is given).
func loadProject(t *testing.T, envFiles ...string) *types.Project {
	t.Helper()
	file := filepath.Join(repoRoot(t), "docker", "compose.yaml")
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithOsEnv, cli.WithEnvFiles(envFiles...), cli.WithDotEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go rejects %s: %v", file, err)
	}
	return p
}

// env returns a service's environment variable and whether it is set.
func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

// mustEnv returns a service's non-empty environment variable.
func mustEnv(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := env(s, key)
	if !ok || v == "" {
		t.Errorf("%s: %s is not set", s.Name, key)
	}
	return v
}

func TestCompose(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		p := loadProject(t)
		checkProject(t, p)
		overridden := fileExists(filepath.Join(repoRoot(t), "docker", ".env"))
		for _, key := range []string{"MAUTIC_PORT", "MAILPIT_UI_PORT", "SIDECAR_PORT"} {
			if _, ok := os.LookupEnv(key); ok {
				overridden = true
			}
		}
		if !overridden {
			checkDefaultPorts(t, p)
		}
	})
	t.Run("env.example", func(t *testing.T) {
		checkProject(t, loadProject(t, filepath.Join(repoRoot(t), "docker", ".env.example")))
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func checkProject(t *testing.T, p *types.Project) {
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	if !slices.Equal(names, wantServices) {
		t.Fatalf("services = %v, want %v", names, wantServices)
	}
	svc := p.Services

	t.Run("images", func(t *testing.T) {
		if img := svc["db"].Image; img != "mariadb:10.11" && img != "mysql:8.4" {
			t.Errorf("db: image %q, want mariadb:10.11 or mysql:8.4", img)
		}
		for _, name := range []string{"mautic_web", "mautic_cron", "mautic_worker", "mautic_install"} {
			if svc[name].Image != mauticImage {
				t.Errorf("%s: image %q, want %s", name, svc[name].Image, mauticImage)
			}
		}
		if img := svc["mailpit"].Image; !strings.HasPrefix(img, "axllent/mailpit:") {
			t.Errorf("mailpit: image %q, want axllent/mailpit", img)
		}
		for _, name := range []string{"sidecar", "sidecar_migrate"} {
			b := svc[name].Build
			if b == nil {
				t.Errorf("%s: not built from the repository", name)
				continue
			}
			ctxDir := b.Context
			if !filepath.IsAbs(ctxDir) {
				ctxDir = filepath.Join(p.WorkingDir, ctxDir)
			}
			if filepath.Clean(ctxDir) != repoRoot(t) {
				t.Errorf("%s: build context %s, want the repository root %s", name, ctxDir, repoRoot(t))
			}
			if df := filepath.ToSlash(b.Dockerfile); df != "docker/Dockerfile" && df != filepath.ToSlash(filepath.Join(repoRoot(t), "docker", "Dockerfile")) {
				t.Errorf("%s: dockerfile %q, want docker/Dockerfile", name, b.Dockerfile)
			}
		}
		if a, b := svc["sidecar"].Build, svc["sidecar_migrate"].Build; a == nil || b == nil ||
			a.Context != b.Context || a.Dockerfile != b.Dockerfile || fmt.Sprint(a.Args.ToMapping()) != fmt.Sprint(b.Args.ToMapping()) {
			t.Errorf("sidecar and sidecar_migrate must be built alike, so that they run the same binary")
		}
	})

	db := svc["db"]
	dbName, dbUser, dbPassword := dbEnv(t, db)

	t.Run("mautic", func(t *testing.T) {
		for name, role := range mauticRoles {
			if got, _ := env(svc[name], "DOCKER_MAUTIC_ROLE"); got != role {
				t.Errorf("%s: DOCKER_MAUTIC_ROLE = %q, want %q", name, got, role)
			}
		}
		for _, name := range []string{"mautic_web", "mautic_cron", "mautic_worker", "mautic_install"} {
			s := svc[name]
			if h := mustEnv(t, s, "MAUTIC_DB_HOST"); h != "db" {
				t.Errorf("%s: MAUTIC_DB_HOST = %q, want the db service", name, h)
			}
			if port, _ := env(s, "MAUTIC_DB_PORT"); port != "3306" {
				t.Errorf("%s: MAUTIC_DB_PORT = %q, want 3306", name, port)
			}
			for key, want := range map[string]string{"MAUTIC_DB_DATABASE": dbName, "MAUTIC_DB_USER": dbUser, "MAUTIC_DB_PASSWORD": dbPassword} {
				if got := mustEnv(t, s, key); got != want {
					t.Errorf("%s: %s = %q, the db service has %q", name, key, got, want)
				}
			}
			for _, key := range []string{"MAUTIC_MESSENGER_DSN_EMAIL", "MAUTIC_MESSENGER_DSN_HIT"} {
				if got := mustEnv(t, s, key); got != "doctrine://default" {
					t.Errorf("%s: %s = %q, want doctrine://default", name, key, got)
				}
			}
			var proxies []string
			if err := json.Unmarshal([]byte(mustEnv(t, s, "MAUTIC_TRUSTED_PROXIES")), &proxies); err != nil || len(proxies) == 0 {
				t.Errorf("%s: MAUTIC_TRUSTED_PROXIES must be a JSON array of CIDRs (mautic/mautic#13261): %v", name, err)
			}
			checkConfigParameters(t, s, mustEnv(t, svc["sidecar"], "MAUTIC_SECRET_KEY"))
			checkMauticVolumes(t, s, svc["mautic_web"])
		}
	})

	t.Run("sidecar", func(t *testing.T) {
		for _, name := range []string{"sidecar", "sidecar_migrate"} {
			s := svc[name]
			for _, key := range sidecarEnv {
				mustEnv(t, s, key)
			}
			m := dsnRE.FindStringSubmatch(mustEnv(t, s, "MAUTIC_DB_DSN"))
			if m == nil {
				t.Errorf("%s: MAUTIC_DB_DSN is not user:password@tcp(host:port)/db", name)
				continue
			}
			if m[1] != dbUser || m[2] != dbPassword || m[3] != "db" || m[4] != "3306" || m[5] != dbName {
				t.Errorf("%s: MAUTIC_DB_DSN names %s@%s:%s/%s, want %s@db:3306/%s with the db service's password",
					name, m[1], m[3], m[4], m[5], dbUser, dbName)
			}
			key := mustEnv(t, s, "MAUTIC_SECRET_KEY")
			if b, err := hex.DecodeString(key); err != nil || len(b) != 32 {
				t.Errorf("%s: MAUTIC_SECRET_KEY must be 64 hexadecimal characters, like Mautic's secret_key", name)
			}
			smtp, err := url.Parse(mustEnv(t, s, "SMTP_URL"))
			if err != nil || smtp.Scheme != "smtp" || smtp.Hostname() != "mailpit" || smtp.Port() != "1025" {
				t.Errorf("%s: SMTP_URL = %q, want smtp://mailpit:1025", name, smtp)
			}
			if listen, ok := env(s, "SIDECAR_LISTEN"); ok && listen != ":"+sidecarPort {
				t.Errorf("%s: SIDECAR_LISTEN = %q, want :%s", name, listen, sidecarPort)
			}
			if got, want := mustEnv(t, s, "SIDECAR_TOKEN"), mustEnv(t, svc["mautic_install"], "SIDECAR_TOKEN"); got != want {
				t.Errorf("%s: SIDECAR_TOKEN differs from the token the bootstrap puts in the webhook", name)
			}
		}
		if got := []string(svc["sidecar_migrate"].Command); !slices.Equal(got, []string{"migrate", "up"}) {
			t.Errorf("sidecar_migrate: command %q, want [migrate up]", got)
		}
		if got := []string(svc["sidecar"].Command); len(got) > 0 && !slices.Equal(got, []string{"serve"}) {
			t.Errorf("sidecar: command %q, want [serve] (the image's default)", got)
		}
		for _, key := range sidecarEnv {
			a, _ := env(svc["sidecar"], key)
			b, _ := env(svc["sidecar_migrate"], key)
			if a != b {
				t.Errorf("sidecar and sidecar_migrate disagree on %s", key)
			}
		}
	})

	t.Run("site url", func(t *testing.T) {
		site := mustEnv(t, svc["sidecar"], "MAUTIC_SITE_URL")
		if got := mustEnv(t, svc["mautic_install"], "MAUTIC_SITE_URL"); got != site {
			t.Errorf("the sidecar's MAUTIC_SITE_URL %q differs from the site_url Mautic is installed with, %q", site, got)
		}
		u, err := url.Parse(site)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("MAUTIC_SITE_URL %q is not an absolute http(s) URL", site)
		}
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" {
			if port := publishedPort(t, svc["mautic_web"], 80); u.Port() != port {
				t.Errorf("MAUTIC_SITE_URL %q: Mautic is published on port %s", site, port)
			}
		}
	})

	t.Run("bootstrap", func(t *testing.T) {
		s := svc["mautic_install"]
		hook, err := url.Parse(mustEnv(t, s, "SIDECAR_WEBHOOK_URL"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := svc[hook.Hostname()]; !ok || hook.Hostname() != "sidecar" {
			t.Errorf("SIDECAR_WEBHOOK_URL host %q is not the sidecar service", hook.Hostname())
		}
		if hook.Scheme != "http" || hook.Port() != sidecarPort || hook.Path != "/v1/campaign/message" {
			t.Errorf("SIDECAR_WEBHOOK_URL = %q, want http://sidecar:%s/v1/campaign/message", hook, sidecarPort)
		}
		if ports := svc["sidecar"].Ports; len(ports) != 1 || strconv.Itoa(int(ports[0].Target)) != hook.Port() {
			t.Errorf("the webhook's port %s is not the sidecar's container port %v", hook.Port(), ports)
		}
		if api, err := url.Parse(mustEnv(t, s, "MAUTIC_API_URL")); err != nil || api.Hostname() != "mautic_web" {
			t.Errorf("MAUTIC_API_URL = %q, want the mautic_web service", api)
		}
		for _, key := range []string{"MAUTIC_SITE_URL", "ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_EMAIL"} {
			mustEnv(t, s, key)
		}
		if pw, _ := env(s, "ADMIN_PASSWORD"); len(pw) < 6 {
			t.Errorf("ADMIN_PASSWORD is shorter than the 6 characters Mautic's installer wants")
		}
		if s.User != "www-data" {
			t.Errorf("mautic_install runs as %q, want www-data (the owner of Mautic's files)", s.User)
		}
		if got := []string(s.Entrypoint); !slices.Equal(got, []string{"/bin/sh", "/bootstrap/bootstrap.sh"}) {
			t.Errorf("mautic_install: entrypoint %q, want [/bin/sh /bootstrap/bootstrap.sh]", got)
		}
		mounted := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Target == "/bootstrap" {
				mounted = filepath.Clean(v.Source) == filepath.Join(repoRoot(t), "docker", "bootstrap") && v.ReadOnly
			}
		}
		if !mounted {
			t.Errorf("mautic_install: docker/bootstrap is not mounted read-only at /bootstrap")
		}
		script, err := os.ReadFile(filepath.Join(repoRoot(t), "docker", "bootstrap", "bootstrap.sh"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`getenv("SIDECAR_WEBHOOK_URL")`, `"Bearer " . getenv("SIDECAR_TOKEN")`, `"campaign.sendwebhook"`, `{contactfield=id}`, "mautic:install"} {
			if !bytes.Contains(script, []byte(want)) {
				t.Errorf("bootstrap.sh does not contain %s", want)
			}
		}
	})

	t.Run("healthchecks", func(t *testing.T) {
		for name, s := range svc {
			hc := s.HealthCheck
			if oneShot[name] {
				if s.Restart != "no" {
					t.Errorf("%s: a one-shot service must not restart (restart: %q)", name, s.Restart)
				}
				continue
			}
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
				t.Errorf("%s: long-running service without a healthcheck", name)
			}
		}
		want := []string{"CMD", sidecarBinary, "probe", "--url", "http://127.0.0.1:" + sidecarPort + "/readyz"}
		if hc := svc["sidecar"].HealthCheck; hc == nil || !slices.Equal([]string(hc.Test), want) {
			t.Errorf("sidecar: healthcheck must be %q (exec form: the image has no shell)", want)
		}
		if hc := svc["mailpit"].HealthCheck; hc == nil || !slices.Contains([]string(hc.Test), "readyz") {
			t.Errorf("mailpit: healthcheck should run `mailpit readyz`")
		}
		if hc := svc["mautic_web"].HealthCheck; hc == nil || !slices.Contains([]string(hc.Test), "curl") || !slices.Contains([]string(hc.Test), "http://localhost") {
			t.Errorf("mautic_web: healthcheck should curl http://localhost")
		}
		if hc := svc["db"].HealthCheck; hc == nil || !(slices.Contains([]string(hc.Test), "healthcheck.sh") || strings.Contains(strings.Join(hc.Test, " "), "mysqladmin")) {
			t.Errorf("db: healthcheck should use healthcheck.sh or mysqladmin ping")
		}
	})

	t.Run("depends_on", func(t *testing.T) {
		for name, s := range svc {
			got := map[string]string{}
			for dep, d := range s.DependsOn {
				got[dep] = d.Condition
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if hc := svc[dep].HealthCheck; hc == nil || hc.Disable {
						t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if !oneShot[dep] {
						t.Errorf("%s waits for %s to complete, which runs for good", name, dep)
					}
				}
			}
			want := wantDependsOn[name]
			if want == nil {
				want = map[string]string{}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: depends_on %v, want %v", name, got, want)
			}
		}
	})

	t.Run("ports", func(t *testing.T) {
		for name, s := range svc {
			want := wantPorts[name]
			if len(s.Ports) != len(want) {
				t.Errorf("%s: publishes %d ports, want %d", name, len(s.Ports), len(want))
			}
			for _, port := range s.Ports {
				if _, ok := want[port.Target]; !ok {
					t.Errorf("%s: publishes container port %d", name, port.Target)
				}
				if _, err := strconv.Atoi(port.Published); err != nil {
					t.Errorf("%s: host port %q is not a number", name, port.Published)
				}
				if port.HostIP != "" && net.ParseIP(port.HostIP) == nil {
					t.Errorf("%s: host address %q is not an IP address", name, port.HostIP)
				}
			}
		}
	})
}

// checkDefaultPorts checks the host ports when nothing overrides them.
func checkDefaultPorts(t *testing.T, p *types.Project) {
	for name, ports := range wantPorts {
		for target, host := range ports {
			if got := publishedPort(t, p.Services[name], target); got != host {
				t.Errorf("%s: container port %d published on %s by default, want %s", name, target, got, host)
			}
		}
	}
}

func publishedPort(t *testing.T, s types.ServiceConfig, target uint32) string {
	t.Helper()
	for _, port := range s.Ports {
		if port.Target == target {
			return port.Published
		}
	}
	t.Errorf("%s: container port %d is not published", s.Name, target)
	return ""
}

// dbEnv returns the database name, user and password the db service creates.
func dbEnv(t *testing.T, db types.ServiceConfig) (name, user, password string) {
	t.Helper()
	prefix := "MARIADB_"
	if strings.HasPrefix(db.Image, "mysql:") {
		prefix = "MYSQL_"
	}
	return mustEnv(t, db, prefix+"DATABASE"), mustEnv(t, db, prefix+"USER"), mustEnv(t, db, prefix+"PASSWORD")
}

// checkConfigParameters checks MAUTIC_CONFIG_PARAMETERS, the JSON object
// Mautic's ParameterLoader merges over config/local.php.
func checkConfigParameters(t *testing.T, s types.ServiceConfig, sidecarKey string) {
	t.Helper()
	var params map[string]any
	if err := json.Unmarshal([]byte(mustEnv(t, s, "MAUTIC_CONFIG_PARAMETERS")), &params); err != nil {
		t.Errorf("%s: MAUTIC_CONFIG_PARAMETERS is not a JSON object (Mautic would fail on every request): %v", s.Name, err)
		return
	}
	for _, key := range []string{"api_enabled", "api_enable_basic_auth"} {
		if params[key] != true {
			t.Errorf("%s: MAUTIC_CONFIG_PARAMETERS must set %s to true for the bootstrap's API calls", s.Name, key)
		}
	}
	if params["secret_key"] != sidecarKey {
		t.Errorf("%s: Mautic's secret_key differs from the sidecar's MAUTIC_SECRET_KEY", s.Name)
	}
	// Mautic counts itself installed when db_driver and site_url are set:
	// either here would skip the installer.
	for _, key := range []string{"site_url", "db_driver"} {
		if _, ok := params[key]; ok {
			t.Errorf("%s: MAUTIC_CONFIG_PARAMETERS must not set %s", s.Name, key)
		}
	}
}

// checkMauticVolumes checks that a Mautic container mounts Mautic's
// directories from the same volumes as mautic_web.
func checkMauticVolumes(t *testing.T, s, web types.ServiceConfig) {
	t.Helper()
	source := func(s types.ServiceConfig, target string) string {
		for _, v := range s.Volumes {
			if v.Target == target {
				return v.Type + ":" + v.Source
			}
		}
		return ""
	}
	for _, target := range mauticVolumes {
		got, want := source(s, target), source(web, target)
		if got == "" || got != want {
			t.Errorf("%s: %s mounted from %q, mautic_web from %q", s.Name, target, got, want)
		}
	}
}

// dockerfile parses docker/Dockerfile with BuildKit's parser and linter and
// returns its stages and the linter's warnings.
func dockerfile(t *testing.T) ([]instructions.Stage, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages, warnings
}

func TestDockerfile(t *testing.T) {
	stages, warnings := dockerfile(t)
	if len(warnings) > 0 {
		t.Errorf("BuildKit's linter warns:\n%s", strings.Join(warnings, "\n"))
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s), want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	if !strings.HasPrefix(build.BaseName, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26-bookworm", build.BaseName)
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want a static distroless image or scratch, not a full OS", final.BaseName)
	}

	// The build stage: go.mod and go.sum, go mod download, then the sources
	// and a static, trimmed build of ./cmd/sidecar with version and commit.
	var steps []string
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			steps = append(steps, "COPY "+strings.Join(c.SourcePaths, " "))
		case *instructions.RunCommand:
			run := strings.Join(c.CmdLine, " ")
			switch {
			case strings.Contains(run, "go mod download"):
				steps = append(steps, "download")
			case strings.Contains(run, "go build"):
				steps = append(steps, "build")
				for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "-X main.commit=", "-o /out/sidecar", "./cmd/sidecar"} {
					if !strings.Contains(run, want) {
						t.Errorf("the go build step lacks %q: %s", want, run)
					}
				}
			}
		}
	}
	if want := []string{"COPY go.mod go.sum", "download", "COPY .", "build"}; !slices.Equal(steps, want) {
		t.Errorf("build stage steps %q, want %q (dependencies cached apart from the sources)", steps, want)
	}

	var user, copied string
	var entrypoint, cmd *instructions.ShellDependantCmdLine
	var health *instructions.HealthCheckCommand
	var exposed []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			if c.From == build.Name && slices.Contains(c.SourcePaths, "/out/sidecar") {
				copied = c.DestPath
			}
		case *instructions.EntrypointCommand:
			entrypoint = &c.ShellDependantCmdLine
		case *instructions.CmdCommand:
			cmd = &c.ShellDependantCmdLine
		case *instructions.HealthCheckCommand:
			health = c
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		}
	}
	if name := strings.SplitN(user, ":", 2)[0]; name == "" || name == "root" || name == "0" {
		t.Errorf("final stage runs as %q, want a non-root USER", user)
	}
	if copied != sidecarBinary {
		t.Errorf("the binary is copied to %q, want %s (the compose healthcheck runs it there)", copied, sidecarBinary)
	}
	if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{sidecarBinary}) {
		t.Errorf("ENTRYPOINT must be the exec form [%q]", sidecarBinary)
	}
	if cmd == nil || cmd.PrependShell || !slices.Equal(cmd.CmdLine, []string{"serve"}) {
		t.Errorf(`CMD must be the exec form ["serve"]`)
	}
	if health == nil || health.Health == nil || len(health.Health.Test) < 3 ||
		health.Health.Test[0] != "CMD" || health.Health.Test[1] != sidecarBinary || health.Health.Test[2] != "probe" {
		t.Errorf("HEALTHCHECK must be the exec form CMD [%q, \"probe\", ...] (the image has no shell)", sidecarBinary)
	}
	if !slices.Contains(exposed, sidecarPort) {
		t.Errorf("EXPOSE %v, want %s", exposed, sidecarPort)
	}
}

// TestDockerignore checks that the build context keeps every file the
// build of ./cmd/sidecar reads (sources and go:embed files of the main
// module's packages, go.mod, go.sum) and leaves out the repository's bulk.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string) bool {
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	list := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/sidecar")
	list.Dir = root
	list.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, file := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, file)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, rel)
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, rel := range needed {
		if excluded(rel) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", rel)
		}
	}
	for _, rel := range []string{".git/HEAD", "sidecar", "bin/sidecar", ".tmp/testsum", "tools/dockercheck/go.mod", "bridge/api_test.go"} {
		if !excluded(rel) {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}
}

// TestBootstrapSyntax runs `sh -n` on the bootstrap (no shellcheck here).
func TestBootstrapSyntax(t *testing.T) {
	script := filepath.Join(repoRoot(t), "docker", "bootstrap", "bootstrap.sh")
	for _, shell := range []string{"sh", "dash", "bash"} {
		bin, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		args := []string{"-n", script}
		if shell == "bash" {
			args = []string{"--posix", "-n", script}
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", shell, path.Base(script), err, out)
		}
	}
}
