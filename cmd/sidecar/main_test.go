package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/internal/testdb"
	"github.com/mautic-mm/sidecar/mautic"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

const secretKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func runCmd(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, env, &out, &errb)
	return out.String(), errb.String(), err
}

func TestConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := loadConfig(nil, nil)
		require.NoError(t, err)
		require.Equal(t, "root@tcp(127.0.0.1:3306)/mautic", cfg.dsn())
		require.Equal(t, ":8080", cfg.Listen)
		require.Equal(t, 16, cfg.Workers)
		require.Equal(t, 100000, cfg.MaxBacklog)
		require.Equal(t, 24*time.Hour, cfg.DedupWindow)
		require.Equal(t, 3, cfg.RetryMax)
		require.Equal(t, 2*time.Second, cfg.RetryBase)
		require.Equal(t, 15*time.Second, cfg.ShutdownTimeout)
		require.Equal(t, "sidecar", cfg.Queue)
		require.Equal(t, "https://api.twilio.com", cfg.TwilioAPIBase)
		require.Equal(t, "https://onesignal.com", cfg.OneSignalAPIBase)
		require.Equal(t, "https://api.x.com", cfg.XAPIBase)
		require.Equal(t, "US", cfg.SMSDefaultRegion)
		require.Equal(t, mautic.Limit{Number: 0, Unit: "DAY"}, cfg.frequencyDefaults()["email"])
	})
	t.Run("environment, then flags", func(t *testing.T) {
		env := []string{"SIDECAR_WORKERS=4", "SIDECAR_LISTEN=:9000", "MAUTIC_EMAIL_FREQUENCY_NUMBER=3", "MAUTIC_EMAIL_FREQUENCY_TIME=WEEK"}
		_, fs, err := parseCommand("serve", []string{"--sidecar-listen", ":9100", "--sidecar-retry-base", "5s"}, env, &bytes.Buffer{}, nil)
		require.NoError(t, err)
		cfg, err := loadConfig(env, fs)
		require.NoError(t, err)
		require.Equal(t, 4, cfg.Workers)
		require.Equal(t, ":9100", cfg.Listen, "a flag wins over the environment")
		require.Equal(t, 5*time.Second, cfg.RetryBase)
		require.Equal(t, mautic.Limit{Number: 3, Unit: mautic.Week}, cfg.frequencyDefaults()["email"])
	})
	t.Run("validation names every problem", func(t *testing.T) {
		_, err := loadConfig([]string{"MAUTIC_TABLE_PREFIX=bad-prefix", "SIDECAR_QUEUE=cron", "MAUTIC_SMS_FREQUENCY_TIME=YEAR",
			"MAUTIC_SECRET_KEY=short", "SIDECAR_WORKERS=-1", "MAUTIC_SITE_URL=ftp://x", "SIDECAR_RATE_LIMITS=email",
			"SIDECAR_QUEUE_BATCH_SIZE=0"}, nil)
		require.Error(t, err)
		for _, want := range []string{"MAUTIC_TABLE_PREFIX", "SIDECAR_QUEUE", "MAUTIC_SMS_FREQUENCY_TIME", "MAUTIC_SECRET_KEY",
			"SIDECAR_WORKERS", "MAUTIC_SITE_URL", "SIDECAR_RATE_LIMITS", "SIDECAR_QUEUE_BATCH_SIZE"} {
			require.Contains(t, err.Error(), want)
		}
		require.NotContains(t, err.Error(), "short", "the bad secret itself is not echoed")
		_, err = loadConfig([]string{"SIDECAR_WORKERS=many"}, nil)
		require.Error(t, err)
		require.Contains(t, err.Error(), "SIDECAR_WORKERS")
	})
	t.Run("secrets are masked when printed", func(t *testing.T) {
		env := []string{"MAUTIC_DB_DSN=u:dbpass@tcp(h:3306)/m", "SIDECAR_TOKEN=tok-123", "SMTP_URL=smtp://me:smtppass@mail:25",
			"TWILIO_AUTH_TOKEN=twauth", "ONESIGNAL_REST_API_KEY=oskey", "X_CONSUMER_SECRET=xsec", "MAUTIC_SECRET_KEY=" + secretKey}
		cfg, err := loadConfig(env, nil)
		require.NoError(t, err)
		var b bytes.Buffer
		cfg.Print(&b)
		text := b.String() + fmt.Sprintf("%v %+v", cfg, cfg)
		for _, s := range []string{"dbpass", "tok-123", "smtppass", "twauth", "oskey", "xsec", secretKey} {
			require.NotContains(t, text, s)
		}
		require.Contains(t, b.String(), "u:xxxxx@tcp(h:3306)/m")
		require.Contains(t, b.String(), "smtp://me:xxxxx@mail:25")
	})
}

func TestVersionAndUsage(t *testing.T) {
	out, _, err := runCmd(t, nil, "version")
	require.NoError(t, err)
	require.Regexp(t, `^sidecar \S+ \(commit \S+, go1\.\d+`, out)
	_, errOut, err := runCmd(t, nil, "frobnicate")
	require.Error(t, err)
	require.Contains(t, errOut, "usage:")
	_, _, err = runCmd(t, nil, "migrate", "down")
	require.ErrorContains(t, err, "no down")
	_, _, err = runCmd(t, nil, "serve")
	require.ErrorContains(t, err, "SIDECAR_TOKEN")
}

func TestMigrateAndCheck(t *testing.T) {
	db := testdb.New(t, testdb.WithoutMigrations())
	env := []string{"MAUTIC_DB_DSN=" + db.DSN, "MAUTIC_TABLE_PREFIX=" + db.Prefix}

	out, _, err := runCmd(t, env, "migrate", "status")
	require.NoError(t, err)
	require.Contains(t, out, "version 0 of 3")
	require.Contains(t, out, "pending")

	out, _, err = runCmd(t, env, "check")
	require.ErrorIs(t, err, errReported)
	require.Contains(t, out, "run `sidecar migrate up`")
	require.Contains(t, out, "SKIP LOCKED supported: yes")
	require.Contains(t, out, "no sender is configured")

	out, _, err = runCmd(t, env, "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, "version 3 of 3")
	_, _, err = runCmd(t, env, "migrate", "up")
	require.NoError(t, err, "idempotent")

	s := seed.New(db.DB, db.Prefix)
	require.NoError(t, s.Integration(context.Background(), "Twilio", true, secretKey,
		map[string]string{"username": "AC0123", "password": "twilio-secret"}, nil, map[string]any{"messaging_service_sid": "MG1"}))
	env = append(env, "MAUTIC_SECRET_KEY="+secretKey, "SMTP_URL=smtp://mail.invalid:25", "SMTP_FROM=news@example.test",
		"CHANNEL_WHATSAPP_WEBHOOK_URL=https://hooks.example.test/wa", "SIDECAR_TOKEN=x")
	out, _, err = runCmd(t, env, "check")
	require.NoError(t, err, out)
	require.Contains(t, out, "result: ok")
	require.Regexp(t, `email\s+live`, out)
	require.Regexp(t, `sms\s+live: Twilio, keys from Mautic.s Twilio integration`, out)
	require.Regexp(t, `notification\s+not configured`, out)
	require.Regexp(t, `whatsapp\s+live`, out)
	require.Contains(t, out, "Twilio keys in Mautic: decrypted")
	require.NotContains(t, out, "twilio-secret")

	wrongKey := append(append([]string(nil), env...), "MAUTIC_SECRET_KEY="+strings.Repeat("ab", 32))
	out, _, _ = runCmd(t, wrongKey, "check")
	require.Contains(t, out, "Twilio keys in Mautic do not decrypt")
	require.NotContains(t, out, "twilio-secret")

	db.MustExec(t, "ALTER TABLE {p}lead_donotcontact DROP COLUMN comments")
	out, _, err = runCmd(t, env, "check")
	require.ErrorIs(t, err, errReported)
	require.Contains(t, out, "missing column "+db.Prefix+"lead_donotcontact.comments")

	_, _, err = runCmd(t, []string{"MAUTIC_DB_DSN=root@tcp(127.0.0.1:1)/x"}, "migrate", "status")
	require.ErrorContains(t, err, "127.0.0.1:1")
}

// TestServeAndRoute runs the real command in-process: it serves the API
// with a webhook sender, routes a dispatch, answers `route`, and stops
// cleanly when its context ends.
func TestServeAndRoute(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	s := seed.New(db.DB, db.Prefix)
	hook := make(chan string, 10)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook <- r.Header.Get("X-Sidecar-Delivery")
		w.WriteHeader(http.StatusOK)
	})}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })

	contact, err := s.Contact(ctx, seed.Contact{Email: "a@example.test"})
	require.NoError(t, err)
	msg, err := s.Message(ctx, "MM", seed.Channel{Channel: "whatsapp", ChannelID: 1})
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	env := []string{"MAUTIC_DB_DSN=" + db.DSN, "MAUTIC_TABLE_PREFIX=" + db.Prefix, "SIDECAR_TOKEN=tok", "SIDECAR_LISTEN=" + addr,
		"CHANNEL_WHATSAPP_WEBHOOK_URL=http://" + hl.Addr().String() + "/hook", "SIDECAR_LOG_LEVEL=warn"}

	out, _, err := runCmd(t, env, "route", "--contact", fmt.Sprint(contact), "--message", fmt.Sprint(msg))
	require.NoError(t, err)
	require.Contains(t, out, "decision: send on whatsapp")
	_, _, err = runCmd(t, env, "route", "--contact", "999999", "--message", fmt.Sprint(msg))
	require.ErrorContains(t, err, "unknown contact")

	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- run(sctx, []string{"serve"}, env, &bytes.Buffer{}, &logs) }()
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	req, _ := http.NewRequest(http.MethodPost, base+"/v1/campaign/message",
		strings.NewReader(url.Values{"contact_id": {fmt.Sprint(contact)}, "message_id": {fmt.Sprint(msg)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	select {
	case key := <-hook:
		require.Contains(t, key, "whatsapp")
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook channel was never called")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	require.Eventually(t, func() bool { return db.Count(t, "sidecar_dispatches", "state = 'sent'") == 1 }, 5*time.Second, 20*time.Millisecond)
}

func TestProbe(t *testing.T) {
	ok := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go ok.Serve(ln)
	t.Cleanup(func() { ok.Close() })
	base := "http://" + ln.Addr().String()
	_, _, err = runCmd(t, nil, "probe", "--url", base+"/readyz")
	require.NoError(t, err)
	_, _, err = runCmd(t, nil, "probe", "--url", base+"/other")
	require.ErrorContains(t, err, "status 503")
	_, _, err = runCmd(t, nil, "probe", "--url", "http://127.0.0.1:1/readyz", "--timeout", "1s")
	require.Error(t, err)
}
