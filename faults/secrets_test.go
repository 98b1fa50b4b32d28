package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/internal/testdb"
)

// TestSecretsNeverPrinted runs `sidecar serve` at debug level with every
// secret set (database password, token, Mautic's secret key, SMTP
// password, Twilio, OneSignal and X keys, a webhook secret), sends on
// every channel, makes every provider refuse with an answer that echoes
// its secret, signs in to the status page, posts wrong tokens and a forged
// Twilio callback, then stops it. The whole log, `sidecar check`'s report
// and the errors of failing commands contain none of the secrets, in plain
// text or in the encodings they travel in (Basic auth, SMTP AUTH PLAIN).
func TestSecretsNeverPrinted(t *testing.T) {
	db := testdb.New(t)
	sec := map[string]string{}
	for _, name := range []string{"db", "token", "smtp", "twilio", "onesignal", "x-consumer-key", "x-consumer-secret",
		"x-access-token", "x-access-secret", "webhook"} {
		sec[name] = name + "-" + randHex(8)
	}
	sec["mautic-secret-key"] = randHex(32)
	dsn := dbUserWithPassword(t, db, sec["db"])

	hooks := map[string]string{"hook": sec["webhook"]}
	sb, err := sandbox.Start(sandbox.Options{TwilioAuthToken: sec["twilio"], OneSignalRESTKey: sec["onesignal"],
		XConsumerKey: sec["x-consumer-key"], XConsumerSecret: sec["x-consumer-secret"], XAccessToken: sec["x-access-token"],
		XAccessSecret: sec["x-access-secret"], WebhookSecrets: hooks})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	mail, err := sandbox.StartSMTP(sandbox.SMTPOptions{Username: "mailer", Password: sec["smtp"]})
	require.NoError(t, err)
	t.Cleanup(func() { mail.Close() })
	tw, osg, x := sb.TwilioConfig(), sb.OneSignalConfig(), sb.XConfig()
	env := map[string]string{
		"MAUTIC_DB_DSN": dsn, "MAUTIC_TABLE_PREFIX": db.Prefix, "MAUTIC_SITE_URL": siteURL, "MAUTIC_SECRET_KEY": sec["mautic-secret-key"],
		"SIDECAR_TOKEN": sec["token"], "SIDECAR_LOG_LEVEL": "debug", "SIDECAR_LOG_FORMAT": "json",
		"SMTP_URL": mail.URL(), "SMTP_FROM": "news@example.test",
		"TWILIO_ACCOUNT_SID": tw.AccountSID, "TWILIO_AUTH_TOKEN": tw.AuthToken, "TWILIO_FROM": tw.From, "TWILIO_API_BASE": tw.BaseURL,
		"ONESIGNAL_APP_ID": osg.AppID, "ONESIGNAL_REST_API_KEY": osg.RESTAPIKey, "ONESIGNAL_API_BASE": osg.BaseURL,
		"X_CONSUMER_KEY": x.ConsumerKey, "X_CONSUMER_SECRET": x.ConsumerSecret, "X_ACCESS_TOKEN": x.AccessToken,
		"X_ACCESS_SECRET": x.AccessSecret, "X_API_BASE": x.BaseURL,
		"CHANNEL_HOOK_WEBHOOK_URL": sb.WebhookURL("hook"), "CHANNEL_HOOK_WEBHOOK_SECRET": sec["webhook"],
	}
	// The forms secrets travel in besides plain text.
	forbidden := map[string]string{
		"twilio basic auth":     base64.StdEncoding.EncodeToString([]byte(tw.AccountSID + ":" + sec["twilio"])),
		"smtp auth plain":       base64.StdEncoding.EncodeToString([]byte("\x00mailer\x00" + sec["smtp"])),
		"token, url-encoded":    url.QueryEscape(sec["token"]),
		"smtp url":              mail.URL(),
		"database dsn (as set)": dsn,
	}
	for k, v := range sec {
		forbidden[k] = v
	}

	ds := newDataset(t, db)
	msg := ds.message("email", "sms", "notification", "tweet", "hook")
	ds.contacts(1, 10, func(id int64) reach {
		switch id % 5 {
		case 0:
			return reach{email: true}
		case 1:
			return reach{mobile: true}
		case 2:
			return reach{push: true}
		case 3:
			return reach{twitter: true}
		}
		return reach{}
	})
	sc := startSidecar(t, "secrets", "", env)
	for c := int64(1); c <= 5; c++ { // one send per channel
		postAuth(t, sc.URL(), ds.form(c, msg, ds.eventID, ""), sec["token"])
	}
	eventually(t, 30*time.Second, "the five sends", func() bool { return pending(t, db) == 0 })
	require.Equal(t, 5, db.Count(t, "sidecar_dispatches", "state = 'sent'"), "one send per channel worked")

	// Every provider refuses, echoing the secret it was sent.
	sb.SetFault(sandbox.Twilio, sandbox.Behavior{Status: 401, Code: 20003, Message: "Authenticate: bad token " + sec["twilio"]})
	sb.SetFault(sandbox.OneSignal, sandbox.Behavior{Status: 403, Message: "Access denied for key " + sec["onesignal"]})
	sb.SetFault(sandbox.X, sandbox.Behavior{Status: 401, Body: `{"title":"Unauthorized","detail":"consumer ` + sec["x-consumer-secret"] + `"}`})
	sb.SetFault(sandbox.Webhook, sandbox.Behavior{Status: 500, Body: "secret was " + sec["webhook"]})
	for c := int64(6); c <= 10; c++ {
		postAuth(t, sc.URL(), ds.form(c, msg, ds.eventID, ""), sec["token"])
	}
	eventually(t, 60*time.Second, "the refused sends to end", func() bool {
		return db.Count(t, "sidecar_dispatches", "contact_id > 5 AND (state <> 'accepted' OR trace LIKE '%provider_transient%')") == 5
	})

	// Requests carrying tokens, right and wrong, and a forged callback.
	for _, h := range []map[string]string{
		{"Authorization": "Bearer wrong-" + sec["token"]},
		{"X-Sidecar-Token": sec["token"] + "x"},
		{"Authorization": "Bearer " + sec["token"]},
	} {
		req, _ := http.NewRequest(http.MethodGet, sc.URL()+"/v1/dispatches/1", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	for _, tok := range []string{sec["token"], "wrong " + sec["token"]} {
		resp, err := http.PostForm(sc.URL()+"/login", url.Values{"token": {tok}})
		require.NoError(t, err)
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodPost, sc.URL()+"/v1/callbacks/twilio", strings.NewReader("MessageSid=SM1&MessageStatus=failed"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", "forged")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	code, _ := sc.term(20 * time.Second)
	require.Equal(t, 0, code)
	logText := sc.log()
	require.Contains(t, logText, `"level":"DEBUG"`, "the log is at debug level")
	require.Contains(t, logText, "provider refused", "the refusals were logged")
	assertNoSecret(t, "the serve log", logText, forbidden)
	var traces []string
	require.NoError(t, db.Select(&traces, "SELECT trace FROM "+db.T("sidecar_dispatches")))
	require.Contains(t, strings.Join(traces, "\n"), "[redacted]", "the provider errors are in the traces, redacted")
	assertNoSecret(t, "the dispatch traces (API and status page)", strings.Join(traces, "\n"), forbidden)

	out := runSidecar(t, env, "check")
	require.Contains(t, out, "result: ok")
	assertNoSecret(t, "sidecar check", out, forbidden)

	// Failing commands: wrong database password, unreachable database,
	// invalid secret key.
	wrongPass := strings.Replace(dsn, sec["db"], "wrong-"+sec["db"], 1)
	out = runSidecar(t, with(env, "MAUTIC_DB_DSN="+wrongPass), "serve")
	require.Contains(t, out, "Access denied")
	assertNoSecret(t, "serve with a wrong database password", out, forbidden)
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	cfg.Addr = "127.0.0.1:1"
	out = runSidecar(t, with(env, "MAUTIC_DB_DSN="+cfg.FormatDSN()), "migrate", "status")
	assertNoSecret(t, "migrate with an unreachable database", out, forbidden)
	bad := "not-hex-" + sec["mautic-secret-key"]
	out = runSidecar(t, with(env, "MAUTIC_SECRET_KEY="+bad), "serve")
	require.Contains(t, out, "MAUTIC_SECRET_KEY")
	require.NotContains(t, out, bad, "an invalid secret is not echoed")
	assertNoSecret(t, "serve with an invalid secret key", out, forbidden)
	report(t, measured{Fault: "secrets: debug-level serve run, check, failing commands", Requests: 10, Accepted: 10, Sent: 5,
		Deliveries: 5, Note: fmt.Sprintf("%d secrets in %d forms searched in %d log lines and 4 command outputs: none found",
			len(sec), len(forbidden), strings.Count(logText, "\n"))})
}

// assertNoSecret fails when text contains any of the forbidden values.
func assertNoSecret(t testing.TB, where, text string, forbidden map[string]string) {
	t.Helper()
	for name, v := range forbidden {
		if i := strings.Index(text, v); i >= 0 {
			from, to := max(0, i-200), min(len(text), i+len(v)+50)
			t.Errorf("%s shows the %s: …%s…", where, name, text[from:to])
		}
	}
}

// runSidecar runs a command of the binary with exactly env and returns its
// output (stdout and stderr).
func runSidecar(t testing.TB, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sidecarBin, args...)
	cmd.Env = envList(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return out.String()
}

// dbUserWithPassword creates a database user with a password and every
// right on the test database, and returns the test DSN with that user.
func dbUserWithPassword(t testing.TB, db *testdb.DB, password string) string {
	t.Helper()
	user := "sct_u_" + randHex(4)
	db.MustExec(t, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password))
	t.Cleanup(func() { _, _ = db.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	db.MustExec(t, fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", db.Name, user))
	cfg, err := mysql.ParseDSN(db.DSN)
	require.NoError(t, err)
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// postAuth makes one webhook call with the given token; it must be 200.
func postAuth(t testing.TB, base string, form url.Values, tok string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/campaign/message", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
