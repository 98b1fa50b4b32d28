package dockercheck

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeMautic stands in for the REST API of Mautic 5 where the bootstrap
// uses it. It follows Mautic's controllers (app/bundles/*/Controller/Api) on
// the points the bootstrap depends on: basic auth, list answers keyed by the
// entity's plural and filtered by where[0][col]=name, the entity's singular
// as the key of single answers, POST /api/contacts/new returning the known
// contact for a known email, marketing message channels refused unless
// Mautic offers them, campaign events taken only together with
// canvasSettings, new events matched by their "new..." ids and existing
// events updated in place by a PATCH.
type fakeMautic struct {
	t          *testing.T
	user, pass string

	mu         sync.Mutex
	smsChannel bool            // an SMS transport is published, so Mautic offers the sms channel
	broken     map[string]bool // "METHOD /api/path" answered with a 500
	nextID     int
	objects    map[string][]map[string]any // API path -> objects
	contacts   map[string]int              // email -> contact id
	members    map[string]bool             // "segment/contact"
	calls      map[string]int              // "METHOD /api/path" with ids as {id} -> count
	events     int                         // campaign events ever created
}

func newFakeMautic(t *testing.T) *fakeMautic {
	return &fakeMautic{t: t, user: "admin", pass: "mautic-dev-admin", nextID: 1,
		objects: map[string][]map[string]any{}, contacts: map[string]int{},
		members: map[string]bool{}, calls: map[string]int{}, broken: map[string]bool{}}
}

// The answer keys of Mautic's API controllers (entityNameOne, entityNameMulti).
var (
	singular = map[string]string{"emails": "email", "smses": "sms", "messages": "message", "segments": "list", "campaigns": "campaign"}
	plural   = map[string]string{"emails": "emails", "smses": "smses", "messages": "messages", "segments": "lists", "campaigns": "campaigns"}
	idRE     = regexp.MustCompile(`/\d+`)
)

func (f *fakeMautic) count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

func (f *fakeMautic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(code int, msg string) {
		reply(code, map[string]any{"errors": []map[string]any{{"code": code, "message": msg}}})
	}
	if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
		fail(http.StatusUnauthorized, "access_denied")
		return
	}
	call := r.Method + " " + idRE.ReplaceAllString(r.URL.Path, "/{id}")
	f.calls[call]++
	if f.broken[call] {
		fail(http.StatusInternalServerError, "broken on purpose")
		return
	}

	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
			fail(http.StatusBadRequest, "want JSON")
			return
		}
		if r.ContentLength != 0 {
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				fail(http.StatusBadRequest, err.Error())
				return
			}
		}
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api"), "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/users/self":
		reply(http.StatusOK, map[string]any{"id": 1, "username": f.user})
	case r.Method == http.MethodGet && len(parts) == 1 && plural[parts[0]] != "":
		q := r.URL.Query()
		list := map[string]any{}
		for _, o := range f.objects[parts[0]] {
			if q.Get("where[0][col]") == "name" && q.Get("where[0][expr]") == "eq" && o["name"] != q.Get("where[0][val]") {
				continue
			}
			list[strconv.Itoa(o["id"].(int))] = view(parts[0], o)
		}
		if len(list) == 0 {
			reply(http.StatusOK, map[string]any{"total": 0, plural[parts[0]]: []any{}}) // PHP's empty array
			return
		}
		reply(http.StatusOK, map[string]any{"total": len(list), plural[parts[0]]: list})
	case r.Method == http.MethodPost && len(parts) == 2 && parts[1] == "new" && singular[parts[0]] != "":
		if err := f.validate(parts[0], body, nil); err != "" {
			fail(http.StatusBadRequest, err)
			return
		}
		o := map[string]any{"id": f.id()}
		f.apply(parts[0], o, body)
		f.objects[parts[0]] = append(f.objects[parts[0]], o)
		reply(http.StatusCreated, map[string]any{singular[parts[0]]: view(parts[0], o)})
	case (r.Method == http.MethodGet && len(parts) == 2 || r.Method == http.MethodPatch && len(parts) == 3 && parts[2] == "edit") && singular[parts[0]] != "":
		o := f.find(parts[0], parts[1])
		if o == nil {
			fail(http.StatusNotFound, "not found")
			return
		}
		if r.Method == http.MethodPatch {
			if err := f.validate(parts[0], body, o); err != "" {
				fail(http.StatusBadRequest, err)
				return
			}
			f.apply(parts[0], o, body)
		}
		reply(http.StatusOK, map[string]any{singular[parts[0]]: view(parts[0], o)})
	case r.Method == http.MethodPost && r.URL.Path == "/api/contacts/new":
		email, _ := body["email"].(string)
		id, known := f.contacts[email]
		if !known {
			id = f.id()
			f.contacts[email] = id
		}
		code := http.StatusCreated
		if known {
			code = http.StatusOK
		}
		reply(code, map[string]any{"contact": map[string]any{"id": id}})
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "segments" && parts[2] == "contact" && parts[4] == "add":
		if f.find("segments", parts[1]) == nil {
			fail(http.StatusNotFound, "no segment")
			return
		}
		f.members[parts[1]+"/"+parts[3]] = true
		reply(http.StatusOK, map[string]any{"success": 1})
	default:
		fail(http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	}
}

// view is an object as Mautic's serializer writes it: a marketing message's
// channels (indexed by channel in the entity) come out as a list.
func view(kind string, o map[string]any) map[string]any {
	if kind != "messages" {
		return o
	}
	out := map[string]any{}
	for k, v := range o {
		out[k] = v
	}
	channels, _ := o["channels"].(map[string]any)
	names := make([]string, 0, len(channels))
	for name := range channels {
		names = append(names, name)
	}
	slices.Sort(names)
	list := []any{}
	for _, name := range names {
		list = append(list, channels[name])
	}
	out["channels"] = list
	return out
}

func (f *fakeMautic) id() int {
	f.nextID++
	return f.nextID
}

func (f *fakeMautic) find(kind, id string) map[string]any {
	for _, o := range f.objects[kind] {
		if strconv.Itoa(o["id"].(int)) == id {
			return o
		}
	}
	return nil
}

// validate refuses what Mautic's forms and controllers refuse; old is the
// object a PATCH edits.
func (f *fakeMautic) validate(kind string, body, old map[string]any) string {
	need := map[string][]string{"emails": {"name", "subject"}, "smses": {"name", "message"}, "messages": {"name"}, "segments": {"name"}, "campaigns": {"name"}}
	if old == nil {
		for _, key := range need[kind] {
			if s, _ := body[key].(string); s == "" {
				return key + ": a value is required"
			}
		}
	}
	switch kind {
	case "messages":
		channels, _ := body["channels"].(map[string]any)
		for name, c := range channels {
			if name != "email" && !(name == "sms" && f.smsChannel) {
				return "channels." + name + ": This form should not contain extra fields."
			}
			if c, _ := c.(map[string]any); c["channelId"] == nil {
				return "channels." + name + ": channelId is required"
			}
		}
	case "campaigns":
		if old == nil {
			if events, _ := body["events"].([]any); len(events) == 0 {
				return "a campaign needs events"
			}
			if lists, _ := body["lists"].([]any); len(lists) == 0 {
				return "a campaign needs a source"
			}
		}
	}
	return ""
}

// apply sets a body's fields on an object as Mautic's models do.
func (f *fakeMautic) apply(kind string, o, body map[string]any) {
	for k, v := range body {
		switch k {
		case "channels", "events", "canvasSettings":
		default:
			o[k] = v
		}
	}
	switch kind {
	case "messages":
		channels, _ := o["channels"].(map[string]any)
		if channels == nil {
			channels = map[string]any{}
		}
		in, _ := body["channels"].(map[string]any)
		for name, c := range in {
			channels[name] = c
		}
		for _, name := range []string{"email", "sms"} { // what Mautic offers, disabled unless given
			if _, ok := channels[name]; !ok && (name == "email" || f.smsChannel) {
				channels[name] = map[string]any{"channel": name, "channelId": nil, "isEnabled": false}
			}
		}
		o["channels"] = channels
	case "campaigns":
		// CampaignApiController sets events only with canvasSettings.
		if body["events"] == nil || body["canvasSettings"] == nil {
			return
		}
		existing, _ := o["events"].([]any)
		for _, e := range body["events"].([]any) {
			e := e.(map[string]any)
			id := fmt.Sprint(e["id"])
			if strings.HasPrefix(id, "new") {
				f.events++
				e["id"] = f.id()
				existing = append(existing, e)
				continue
			}
			for _, old := range existing {
				if old := old.(map[string]any); fmt.Sprint(old["id"]) == id {
					for k, v := range e {
						if k != "id" {
							old[k] = v
						}
					}
				}
			}
		}
		o["events"] = existing
	}
}

// bootstrapEnv prepares a Mautic directory with a fake console (it only
// installs) and a PATH with a fake mysqladmin, and returns the bootstrap's
// environment.
func bootstrapEnv(t *testing.T, apiURL string) (dir string, environ []string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{"bin", "config", "path"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		// What the image's entrypoint copies from its local.php template.
		"config/local.php": `<?php $parameters = ['db_driver' => 'pdo_mysql', 'db_host' => 'db'];`,
		// mautic:install records its arguments and adds site_url.
		"bin/console": `<?php
file_put_contents(__DIR__ . '/../install.log', json_encode(array_slice($argv, 1)) . "\n", FILE_APPEND);
include __DIR__ . '/../config/local.php';
$parameters['site_url'] = $argv[2];
$parameters['secret_key'] = 'generated-by-the-installer';
file_put_contents(__DIR__ . '/../config/local.php', '<?php $parameters = ' . var_export($parameters, true) . ';');
echo "Install complete\n";
`,
		"path/mysqladmin": "#!/bin/sh\nexit 0\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		environ = append(environ, kv)
	}
	environ = append(environ,
		"PATH="+filepath.Join(dir, "path")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAUTIC_ROOT="+dir,
		"MAUTIC_API_URL="+apiURL,
		"MAUTIC_SITE_URL=http://localhost:8080",
		"MAUTIC_DB_HOST=db", "MAUTIC_DB_PORT=3306", "MAUTIC_DB_USER=mautic", "MAUTIC_DB_PASSWORD=secret",
		"ADMIN_USERNAME=admin", "ADMIN_PASSWORD=mautic-dev-admin", "ADMIN_EMAIL=admin@example.com",
		"SIDECAR_WEBHOOK_URL=http://sidecar:8080/v1/campaign/message",
	)
	return dir, environ
}

func runBootstrap(t *testing.T, environ []string, token string) string {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(repoRoot(t), "docker", "bootstrap", "bootstrap.sh"))
	cmd.Env = append(slices.Clone(environ), "SIDECAR_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap.sh: %v\n%s", err, out)
	}
	return string(out)
}

// TestBootstrapAgainstFakeMautic runs the bootstrap three times against a
// fake Mautic API: the first run installs and creates every sample object
// once, the second changes nothing, the third (new token, SMS transport now
// published) updates the webhook and adds the SMS channel in place.
func TestBootstrapAgainstFakeMautic(t *testing.T) {
	for _, tool := range []string{"sh", "php", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the bootstrap runs on the Mautic image, which has it", tool)
		}
	}
	f := newFakeMautic(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir, environ := bootstrapEnv(t, srv.URL)

	creates := func() map[string]int {
		out := map[string]int{}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, kind := range []string{"emails", "smses", "messages", "segments", "campaigns"} {
			out[kind] = len(f.objects[kind])
		}
		return out
	}
	wantOnce := map[string]int{"emails": 1, "smses": 1, "messages": 1, "segments": 1, "campaigns": 1}

	ready := func(out string) {
		t.Helper()
		if !strings.Contains(out, "bootstrap: ready: marketing message ") {
			t.Errorf("the bootstrap did not report the samples ready:\n%s", out)
		}
	}

	// First run.
	out := runBootstrap(t, environ, "token-1")
	ready(out)
	install, err := os.ReadFile(filepath.Join(dir, "install.log"))
	if err != nil {
		t.Fatalf("mautic:install was not run:\n%s", out)
	}
	if !strings.HasPrefix(string(install), `["mautic:install","http:\/\/localhost:8080","--force",`) ||
		!strings.Contains(string(install), `"--admin_password=mautic-dev-admin"`) {
		t.Errorf("mautic:install ran with %s", install)
	}
	if got := creates(); fmt.Sprint(got) != fmt.Sprint(wantOnce) {
		t.Errorf("first run created %v, want %v\n%s", got, wantOnce, out)
	}
	if len(f.contacts) != 2 || len(f.members) != 2 || f.events != 1 {
		t.Errorf("first run: %d contacts, %d segment members, %d events; want 2, 2, 1", len(f.contacts), len(f.members), f.events)
	}
	message := f.objects["messages"][0]
	campaign := f.objects["campaigns"][0]
	checkWebhook(t, campaign, message["id"].(int), "token-1")
	if ch := message["channels"].(map[string]any); ch["email"].(map[string]any)["isEnabled"] != float64(1) || ch["sms"] != nil {
		t.Errorf("without an SMS transport the message should have the email channel only: %v", ch)
	}

	// Second run: nothing new, nothing changed.
	out = runBootstrap(t, environ, "token-1")
	ready(out)
	if b, _ := os.ReadFile(filepath.Join(dir, "install.log")); strings.Count(string(b), "\n") != 1 {
		t.Errorf("mautic:install ran again on an installed Mautic")
	}
	if got := creates(); fmt.Sprint(got) != fmt.Sprint(wantOnce) {
		t.Errorf("second run created more: %v\n%s", got, out)
	}
	if n := f.count("PATCH /api/campaigns/{id}/edit"); n != 1 {
		t.Errorf("campaign edited %d times after two runs, want 1 (the ids, on creation)", n)
	}
	if len(f.contacts) != 2 || len(f.members) != 2 || f.events != 1 {
		t.Errorf("second run: %d contacts, %d segment members, %d events; want 2, 2, 1", len(f.contacts), len(f.members), f.events)
	}

	// Third run: a new token, and Mautic now offers the SMS channel.
	f.mu.Lock()
	f.smsChannel = true
	f.mu.Unlock()
	out = runBootstrap(t, environ, "token-2")
	ready(out)
	if got := creates(); fmt.Sprint(got) != fmt.Sprint(wantOnce) {
		t.Errorf("third run created more: %v\n%s", got, out)
	}
	if n := f.count("PATCH /api/campaigns/{id}/edit"); n != 2 || f.events != 1 {
		t.Errorf("third run: %d campaign edits, %d events; want 2 and 1\n%s", n, f.events, out)
	}
	checkWebhook(t, campaign, message["id"].(int), "token-2")
	sms, _ := message["channels"].(map[string]any)["sms"].(map[string]any)
	if sms == nil || sms["isEnabled"] != float64(1) || sms["channelId"] != float64(f.objects["smses"][0]["id"].(int)) {
		t.Errorf("the SMS channel was not added to the message: %v\n%s", message["channels"], out)
	}
}

// checkWebhook checks the campaign's one event: Mautic's "Send a webhook"
// with the properties Mautic's CampaignHelper reads.
func checkWebhook(t *testing.T, campaign map[string]any, messageID int, token string) {
	t.Helper()
	events, _ := campaign["events"].([]any)
	if len(events) != 1 {
		t.Fatalf("campaign has %d events, want 1", len(events))
	}
	e := events[0].(map[string]any)
	if e["type"] != "campaign.sendwebhook" || e["eventType"] != "action" || e["triggerMode"] != "immediate" {
		t.Errorf("event %v is not an immediate campaign.sendwebhook action", e)
	}
	p := e["properties"].(map[string]any)
	if p["url"] != "http://sidecar:8080/v1/campaign/message" || p["method"] != "post" {
		t.Errorf("webhook %v %v, want post http://sidecar:8080/v1/campaign/message", p["method"], p["url"])
	}
	list := func(key string) map[string]string {
		out := map[string]string{}
		l, _ := p[key].(map[string]any)
		items, _ := l["list"].([]any)
		for _, it := range items {
			it := it.(map[string]any)
			out[it["label"].(string)] = it["value"].(string)
		}
		return out
	}
	if got := list("headers"); got["Authorization"] != "Bearer "+token {
		t.Errorf("headers %v, want Authorization: Bearer %s", got, token)
	}
	want := map[string]string{
		"contact_id":  "{contactfield=id}",
		"message_id":  strconv.Itoa(messageID),
		"campaign_id": strconv.Itoa(campaign["id"].(int)),
		"event_id":    strconv.Itoa(int(e["id"].(int))),
	}
	got := list("additional_data")
	// Mautic keys the list by value, so the values must be distinct; equal
	// ids are written with leading zeros, which the sidecar reads as the
	// same numbers.
	seen := map[string]string{}
	for label, v := range got {
		if other, dup := seen[v]; dup {
			t.Errorf("additional_data: %s and %s share the value %q: Mautic would send only one", label, other, v)
		}
		seen[v] = label
		if label != "contact_id" {
			got[label] = strings.TrimLeft(v, "0")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("additional_data %v, want %v", got, want)
	}
}

// TestBootstrapSampleFailure checks that a failing API call with the sample
// objects is reported without failing the bootstrap (Mautic is installed, and
// the services after the bootstrap must start), while an install that does
// not complete fails it.
func TestBootstrapSampleFailure(t *testing.T) {
	for _, tool := range []string{"sh", "php", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the bootstrap runs on the Mautic image, which has it", tool)
		}
	}
	f := newFakeMautic(t)
	f.broken["POST /api/campaigns/new"] = true
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir, environ := bootstrapEnv(t, srv.URL)

	out := runBootstrap(t, environ, "token-1")
	if !strings.Contains(out, "POST "+srv.URL+"/api/campaigns/new: HTTP 500") ||
		!strings.Contains(out, "error: the sample objects are incomplete") || strings.Contains(out, "bootstrap: ready:") {
		t.Errorf("a broken campaign API is not reported:\n%s", out)
	}
	if len(f.objects["messages"]) != 1 || len(f.objects["campaigns"]) != 0 {
		t.Errorf("%d messages, %d campaigns; want 1 and 0", len(f.objects["messages"]), len(f.objects["campaigns"]))
	}

	// An installer that stops early (it exits 0 at a failed requirements
	// check) leaves site_url unset: the bootstrap fails.
	if err := os.WriteFile(filepath.Join(dir, "config", "local.php"), []byte(`<?php $parameters = ['db_driver' => 'pdo_mysql'];`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "console"), []byte("<?php echo \"Install canceled\\n\";\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", filepath.Join(repoRoot(t), "docker", "bootstrap", "bootstrap.sh"))
	cmd.Env = append(slices.Clone(environ), "SIDECAR_TOKEN=token-1")
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "mautic:install did not complete") {
		t.Errorf("an incomplete install should fail the bootstrap: %v\n%s", err, b)
	}
}
