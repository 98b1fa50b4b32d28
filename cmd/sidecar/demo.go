package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/internal/seed"
	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/migrations"
)

// demoDatabase is the throwaway database `sidecar demo` creates.
const demoDatabase = "sidecar_demo"

// demoMarker marks a database as created by the demo: the demo never
// touches a database without it.
const demoMarker = "sidecar_demo_marker"

// runDemo is `sidecar demo` (DESIGN.md section 8): a throwaway database
// with Mautic's schema and seeded contacts, the real server with sandbox
// providers on loopback, the webhook called as Mautic calls it, and a
// report per contact.
func runDemo(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	var once bool
	var extra int
	dbName := demoDatabase
	cfg, _, err := parseCommand("demo", args, environ, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&once, "once", false, "exit after printing the totals instead of serving until Ctrl-C")
		fs.IntVar(&extra, "contacts", 500, "extra contacts with random preferences, routed to show the pace (totals only)")
		fs.StringVar(&dbName, "demo-database", demoDatabase, "name of the throwaway database")
	})
	if err != nil {
		return err
	}
	if extra < 0 || extra > 200000 {
		return errors.New("--contacts must be between 0 and 200000")
	}
	p := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	p("sidecar demo: the whole product on this machine, with stand-in providers that only record")

	// 1. The database.
	if !demoNameRE.MatchString(dbName) {
		return errors.New("--demo-database: letters, digits and _ only")
	}
	dsn, server, err := demoDSN(cfg.dsn(), dbName)
	if err != nil {
		return err
	}
	if err := createDemoDatabase(ctx, server, dbName); err != nil {
		return err
	}
	cfg.DBDSN = Secret(dsn)
	cfg.TablePrefix = ""
	if err := loadDemoSchema(ctx, dsn); err != nil {
		return err
	}
	p("  database   %s on %s: created, Mautic's schema and the sidecar's tables loaded", dbName, server.Addr)

	// 2. Providers: loopback stand-ins, whatever the environment says.
	sb, err := sandbox.Start(sandbox.Options{})
	if err != nil {
		return err
	}
	defer sb.Close()
	mail, err := sandbox.StartSMTP(sandbox.SMTPOptions{RejectRecipients: []string{"jo.bounce@example.test"}})
	if err != nil {
		return err
	}
	defer mail.Close()
	tw, onesig := sb.TwilioConfig(), sb.OneSignalConfig()
	cfg.SMTPURL, cfg.SMTPFrom = Secret(mail.URL()), "Demo Shop <news@demo.example>"
	cfg.TwilioAccountSID, cfg.TwilioAuthToken, cfg.TwilioMessagingServiceSID, cfg.TwilioAPIBase =
		tw.AccountSID, Secret(tw.AuthToken), "MG0000000000000000000000000000demo", sb.URL()
	cfg.TwilioFrom = ""
	cfg.OneSignalAppID, cfg.OneSignalRESTAPIKey, cfg.OneSignalAPIBase = onesig.AppID, Secret(onesig.RESTAPIKey), sb.URL()
	cfg.XConsumerKey, cfg.XConsumerSecret, cfg.XAccessToken, cfg.XAccessSecret = "", "", "", ""
	cfg.Environ = nil // no custom channel webhooks from the environment
	cfg.SiteURL, cfg.SecretKey = "https://mautic.demo.example", Secret(randomHex(32))
	cfg.EmailFreqNum, cfg.EmailFreqTim = 3, "WEEK" // Mautic's global default email limit, to show it at work
	cfg.Queue = "sidecar"
	if cfg.Token == "" {
		cfg.Token = Secret("demo-" + randomHex(8))
	}
	p("  providers  SMTP %s; Twilio and OneSignal stand-ins at %s (record only, loopback)", mail.Addr(), sb.URL())

	// 3. Mautic's data: contacts with varied preferences, a marketing message.
	db, err := mautic.Open(ctx, mautic.Config{DSN: dsn, MaxOpenConns: cfg.DBMaxConns})
	if err != nil {
		return err
	}
	defer db.Close()
	story, err := seedDemo(ctx, db, sb)
	if err != nil {
		return err
	}
	if extra > 0 {
		if err := seedRandomContacts(ctx, db, extra, story); err != nil {
			return err
		}
	}
	p("  seeded     %d contacts with preferences, DNC, limits, pauses and history (+%d random ones)", len(story.contacts), extra)
	p("             marketing message %d %q on email, sms and notification (web push); campaign %d, event %d",
		story.messageID, "Winter sale", story.campaignID, story.eventID)

	// 4. The real server.
	log := newLogger(Config{LogLevel: "warn", LogFormat: "text"}, stderr)
	ln, err := listenDemo(cfg.Listen)
	if err != nil {
		return err
	}
	cfg.Listen = ln.Addr().String()
	srv, err := startServer(ctx, cfg, db, log, ln)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	p("  server     %s (SIDECAR_TOKEN=%s)", base, string(cfg.Token))

	// 5. Mautic's "Send a webhook" action, once per contact.
	all := append(append([]demoContact(nil), story.contacts...), story.random...)
	p("calling POST %s/v1/campaign/message for %d contacts, as Mautic's \"Send a webhook\" action does", base, len(all))
	start := time.Now()
	ids, err := callWebhook(ctx, base, string(cfg.Token), story, all, stdout)
	if err != nil {
		_ = srv.stop()
		return err
	}
	results, err := waitRouted(ctx, base, string(cfg.Token), ids, stdout)
	if err != nil {
		_ = srv.stop()
		return err
	}
	took := time.Since(start)
	printDemoReport(stdout, story, results, len(all), took)
	p("")
	p("status page  %s/  (log in with the token above)", base)
	p("API          curl -H 'Authorization: Bearer %s' %s/v1/dispatches/%d", string(cfg.Token), base, ids[0])
	p("             curl -H 'Authorization: Bearer %s' '%s/v1/route?contact_id=%d&message_id=%d'", string(cfg.Token), base,
		story.contacts[0].id, story.messageID)
	p("mail         %d messages caught by the SMTP stand-in; %d SMS and %d web pushes recorded by the stand-ins",
		mail.Count(), len(sb.Delivered(sandbox.Twilio)), len(sb.Delivered(sandbox.OneSignal)))
	if once {
		return srv.stop()
	}
	p("serving until Ctrl-C")
	<-ctx.Done()
	return srv.stop()
}

// demoDSN returns the demo database's DSN on the configured server.
func demoDSN(configured, name string) (string, *mysql.Config, error) {
	cfg, err := mautic.NormalizeDSN(configured)
	if err != nil {
		return "", nil, err
	}
	server := cfg.Clone()
	server.DBName = ""
	cfg.DBName = name
	return cfg.FormatDSN(), server, nil
}

var demoNameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// createDemoDatabase (re)creates sidecar_demo, refusing a database of that
// name that the demo did not create.
func createDemoDatabase(ctx context.Context, server *mysql.Config, name string) error {
	admin, err := sqlx.Open("mysql", server.FormatDSN())
	if err != nil {
		return err
	}
	defer admin.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := admin.PingContext(pctx); err != nil {
		return fmt.Errorf("no MySQL/MariaDB server at %s (%v): `make demo` starts one, or set MAUTIC_DB_DSN", server.Addr, err)
	}
	var n int
	if err := admin.GetContext(ctx, &n, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name); err != nil {
		return fmt.Errorf("read databases: %w", err)
	}
	if n > 0 {
		var marked int
		if err := admin.GetContext(ctx, &marked, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
			name, demoMarker); err != nil {
			return fmt.Errorf("read tables: %w", err)
		}
		if marked == 0 {
			return fmt.Errorf("a database named %s exists and was not created by the demo: refusing to touch it", name)
		}
		if _, err := admin.ExecContext(ctx, "DROP DATABASE `"+name+"`"); err != nil {
			return fmt.Errorf("drop the previous demo database: %w", err)
		}
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE TABLE `"+name+"`.`"+demoMarker+"` (created_at DATETIME NOT NULL)"); err != nil {
		return fmt.Errorf("mark %s: %w", name, err)
	}
	_, err = admin.ExecContext(ctx, "INSERT INTO `"+name+"`.`"+demoMarker+"` VALUES (?)", time.Now().UTC())
	return err
}

func loadDemoSchema(ctx context.Context, dsn string) error {
	conn, err := sqlx.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmts, err := mautic.SchemaStatements("")
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if _, err := conn.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("load Mautic's schema: %w", err)
		}
	}
	return migrations.Up(dsn, "")
}

// listenDemo listens on SIDECAR_LISTEN when it is free, else on a free
// loopback port.
func listenDemo(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		return ln, nil
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// demoContact is one seeded contact and what it is meant to show.
type demoContact struct {
	id    int64
	name  string
	shows string
}

type demoStory struct {
	contacts   []demoContact
	random     []demoContact
	messageID  int64
	campaignID int64
	eventID    int64
	emailID    int64
	smsID      int64
	pushID     int64
}

// seedDemo writes the demo's Mautic rows: a marketing message on email, SMS
// and web push, and contacts that each show one routing rule.
func seedDemo(ctx context.Context, db *mautic.DB, sb *sandbox.Server) (*demoStory, error) {
	s := seed.New(db.DB, "")
	st := &demoStory{}
	var err error
	if st.emailID, err = s.Email(ctx, seed.Email{Name: "Winter sale (email)", Subject: "{contactfield=firstname|Hello}, the winter sale starts now",
		HTML: "<html><body><h1>Winter sale</h1><p>Hi {contactfield=firstname|there}, 30% off until Sunday.</p>" +
			"<p><a href=\"{unsubscribe_url}\">Unsubscribe</a></p></body></html>",
		Text: "Hi {contactfield=firstname|there}, 30% off until Sunday.", FromAddress: "news@demo.example", FromName: "Demo Shop"}); err != nil {
		return nil, err
	}
	if st.smsID, err = s.SMS(ctx, seed.SMS{Name: "Winter sale (SMS)", Message: "Hi {contactfield=firstname|there}: winter sale, 30% off until Sunday."}); err != nil {
		return nil, err
	}
	if st.pushID, err = s.Push(ctx, seed.Push{Name: "Winter sale (push)", Heading: "Winter sale", Message: "30% off until Sunday",
		URL: "https://shop.demo.example/sale"}); err != nil {
		return nil, err
	}
	if st.messageID, err = s.Message(ctx, "Winter sale",
		seed.Channel{Channel: "email", ChannelID: st.emailID},
		seed.Channel{Channel: "sms", ChannelID: st.smsID},
		seed.Channel{Channel: "notification", ChannelID: st.pushID}); err != nil {
		return nil, err
	}
	if st.campaignID, st.eventID, err = s.Campaign(ctx, "Winter sale campaign"); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	week := now.Add(7 * 24 * time.Hour)
	day := func(n int) *mautic.Limit { return &mautic.Limit{Number: n, Unit: mautic.Day} }
	type spec struct {
		c       seed.Contact
		shows   string
		push    bool
		prepare func(id int64) error
	}
	specs := []spec{
		{c: seed.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.test", Mobile: "+14155550101"},
			shows: "no preferences: the message's first channel"},
		{c: seed.Contact{FirstName: "Ben", LastName: "Ortiz", Email: "ben@example.test", Mobile: "+14155550102"},
			shows: "prefers SMS", prepare: func(id int64) error {
				if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "email"}); err != nil {
					return err
				}
				_, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "sms", Preferred: true})
				return err
			}},
		{c: seed.Contact{FirstName: "Cleo", LastName: "Park", Email: "cleo@example.test", Mobile: "+14155550103"},
			shows: "unsubscribed from email", prepare: func(id int64) error {
				_, err := s.DNC(ctx, id, "email", mautic.DNCUnsubscribed)
				return err
			}},
		{c: seed.Contact{FirstName: "Dan", LastName: "Weiss", Email: "dan@example.test", Mobile: "+14155550104"},
			shows: "email limit 1 a DAY, one sent 3 hours ago", prepare: func(id int64) error {
				if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "email", Limit: day(1)}); err != nil {
					return err
				}
				return s.EmailStat(ctx, id, st.emailID, now.Add(-3*time.Hour))
			}},
		{c: seed.Contact{FirstName: "Eve", LastName: "Adams", Email: "eve@example.test", Mobile: "+14155550105"}, push: true,
			shows: "paused email and SMS for a week", prepare: func(id int64) error {
				from := now.Add(-time.Hour)
				for _, ch := range []string{"email", "sms"} {
					if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: ch, PauseFrom: &from, PauseTo: &week}); err != nil {
						return err
					}
				}
				return nil
			}},
		{c: seed.Contact{FirstName: "Finn", LastName: "Cole"}, push: true, shows: "only a web push subscription"},
		{c: seed.Contact{FirstName: "Gia", LastName: "Rossi", Email: "gia@example.test"},
			shows: "3 emails this week: Mautic's global default (3 a WEEK) applies", prepare: func(id int64) error {
				for h := 1; h <= 3; h++ {
					if err := s.EmailStat(ctx, id, st.emailID, now.Add(-time.Duration(h*20)*time.Hour)); err != nil {
						return err
					}
				}
				return nil
			}},
		{c: seed.Contact{FirstName: "Hal", LastName: "Moore"}, shows: "no address on any channel"},
		{c: seed.Contact{FirstName: "Ivy", LastName: "Chen", Email: "ivy@example.test", Mobile: "+14155550109"},
			shows: "email over its limit, SMS paused: queued", prepare: func(id int64) error {
				if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "email", Limit: day(1), Preferred: true}); err != nil {
					return err
				}
				if err := s.EmailStat(ctx, id, st.emailID, now.Add(-5*time.Hour)); err != nil {
					return err
				}
				from := now.Add(-time.Hour)
				to := now.Add(48 * time.Hour)
				_, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "sms", Limit: day(2), PauseFrom: &from, PauseTo: &to})
				return err
			}},
		{c: seed.Contact{FirstName: "Jo", LastName: "Bauer", Email: "jo.bounce@example.test", Mobile: "+14155550110"},
			shows: "the mail server rejects the address (bounce)"},
		{c: seed.Contact{FirstName: "Kim", LastName: "Lee", Mobile: "+14155550111"}, push: true,
			shows: "Twilio answers 21211 (invalid number)", prepare: func(id int64) error {
				sb.SetAddress(sandbox.Twilio, "+14155550111", sandbox.Behavior{Code: sandbox.TwilioInvalidNumber, Message: "The 'To' number is not a valid phone number."})
				return nil
			}},
		{c: seed.Contact{FirstName: "Lu", LastName: "Silva", Email: "lu@example.test", Mobile: "+14155550112"}, push: true,
			shows: "prefers web push"},
	}
	for i, sp := range specs {
		id, err := s.Contact(ctx, sp.c)
		if err != nil {
			return nil, err
		}
		if sp.push {
			if err := s.PushID(ctx, id, fmt.Sprintf("demo-player-%d", i+1), false); err != nil {
				return nil, err
			}
		}
		if sp.prepare != nil {
			if err := sp.prepare(id); err != nil {
				return nil, err
			}
		}
		if sp.shows == "prefers web push" {
			if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "notification", Preferred: true}); err != nil {
				return nil, err
			}
		}
		st.contacts = append(st.contacts, demoContact{id: id, name: sp.c.FirstName + " " + sp.c.LastName, shows: sp.shows})
	}
	return st, nil
}

// seedRandomContacts adds n contacts with random preferences, in a few
// multi-row statements.
func seedRandomContacts(ctx context.Context, db *mautic.DB, n int, st *demoStory) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	s := seed.New(tx, "")
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		c := seed.Contact{FirstName: fmt.Sprintf("Guest%d", i+1)}
		switch i % 5 {
		case 0, 1:
			c.Email = fmt.Sprintf("guest%d@example.test", i+1)
		case 2:
			c.Mobile = fmt.Sprintf("+1415556%04d", i%10000)
		case 3:
			c.Email, c.Mobile = fmt.Sprintf("guest%d@example.test", i+1), fmt.Sprintf("+1415557%04d", i%10000)
		}
		id, err := s.Contact(ctx, c)
		if err != nil {
			return err
		}
		switch i % 7 {
		case 1:
			if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "sms", Preferred: true}); err != nil {
				return err
			}
		case 2:
			if _, err := s.Rule(ctx, seed.Rule{ContactID: id, Channel: "email", Limit: &mautic.Limit{Number: 1, Unit: mautic.Week}}); err != nil {
				return err
			}
			if err := s.EmailStat(ctx, id, st.emailID, now.Add(-48*time.Hour)); err != nil {
				return err
			}
		case 3:
			if _, err := s.DNC(ctx, id, "email", mautic.DNCBounced); err != nil {
				return err
			}
		}
		if i%4 == 0 {
			if err := s.PushID(ctx, id, fmt.Sprintf("guest-player-%d", i+1), false); err != nil {
				return err
			}
		}
		st.random = append(st.random, demoContact{id: id, name: c.FirstName})
	}
	return tx.Commit()
}

// callWebhook posts one form-encoded call per contact with the fields an
// admin configures in Mautic's action, 16 at a time.
func callWebhook(ctx context.Context, base, token string, st *demoStory, contacts []demoContact, out io.Writer) ([]int64, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	ids := make([]int64, len(contacts))
	errc := make(chan error, len(contacts))
	sem := make(chan struct{}, 16)
	done := make(chan int, len(contacts))
	for i, c := range contacts {
		go func(i int, c demoContact) {
			sem <- struct{}{}
			defer func() { <-sem }()
			form := url.Values{"contact_id": {fmt.Sprint(c.id)}, "message_id": {fmt.Sprint(st.messageID)},
				"campaign_id": {fmt.Sprint(st.campaignID)}, "event_id": {fmt.Sprint(st.eventID)}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/campaign/message", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				errc <- err
				return
			}
			defer resp.Body.Close()
			var body struct {
				DispatchID int64 `json:"dispatch_id"`
			}
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
				errc <- fmt.Errorf("contact %d: the sidecar answered %d", c.id, resp.StatusCode)
				return
			}
			ids[i] = body.DispatchID
			done <- i
		}(i, c)
	}
	for n := 0; n < len(contacts); n++ {
		select {
		case err := <-errc:
			return nil, err
		case <-done:
			progress(out, "  webhook calls answered 200", n+1, len(contacts))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return ids, nil
}

// demoResult is what GET /v1/dispatches/{id} says.
type demoResult struct {
	State   string  `json:"state"`
	Channel *string `json:"channel"`
	Trace   []struct {
		Channel  string `json:"channel"`
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		Detail   string `json:"detail"`
	} `json:"trace"`
	Queue *struct {
		ScheduledDate string `json:"scheduled_date"`
	} `json:"queue"`
}

// waitRouted polls the dispatches until none is accepted any more.
func waitRouted(ctx context.Context, base, token string, ids []int64, out io.Writer) ([]demoResult, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	results := make([]demoResult, len(ids))
	pending := make([]int, len(ids))
	for i := range ids {
		pending[i] = i
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(pending) > 0 {
		var still []int
		for _, i := range pending {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/dispatches/%d", base, ids[i]), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			var r demoResult
			err = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("dispatch %d: %w", ids[i], err)
			}
			if r.State == "accepted" {
				still = append(still, i)
				continue
			}
			results[i] = r
		}
		if len(still) != len(pending) || len(still) == 0 {
			progress(out, "  dispatches routed", len(ids)-len(still), len(ids))
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d dispatches were not routed within 2 minutes", len(pending))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return results, nil
}

// progress shows n of total: an updating line on a terminal, a line per
// quarter otherwise (logs, CI).
func progress(out io.Writer, what string, n, total int) {
	if isTerminal(out) {
		fmt.Fprintf(out, "\r%s: %d/%d", what, n, total)
		if n == total {
			fmt.Fprintln(out)
		}
		return
	}
	if total <= 0 {
		return
	}
	step := max(1, total/4)
	if n == total || n%step == 0 {
		fmt.Fprintf(out, "%s: %d/%d\n", what, n, total)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// why explains a dispatch in one line, from its trace.
func why(r demoResult) string {
	var parts []string
	for _, e := range r.Trace {
		switch e.Decision {
		case "skipped":
			parts = append(parts, fmt.Sprintf("%s skipped (%s: %s)", e.Channel, e.Reason, e.Detail))
		case "failed_permanent", "failed_transient":
			parts = append(parts, fmt.Sprintf("%s failed (%s)", e.Channel, e.Detail))
		case "sent":
			parts = append(parts, "sent on "+e.Channel)
		case "queued":
			parts = append(parts, "queued on "+e.Channel+" ("+e.Detail+")")
		}
	}
	if len(parts) == 0 {
		return r.State
	}
	return strings.Join(parts, "; ")
}

func printDemoReport(out io.Writer, st *demoStory, results []demoResult, total int, took time.Duration) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "contact\tshows\toutcome\twhy")
	for i, c := range st.contacts {
		r := results[i]
		outcome := r.State
		if r.Channel != nil {
			outcome += " " + *r.Channel
		}
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\n", c.id, c.name, c.shows, outcome, why(r))
	}
	_ = tw.Flush()
	totals := map[string]int{}
	order := []string{}
	for _, r := range results {
		k := r.State
		if r.State == "sent" && r.Channel != nil {
			k = *r.Channel
		}
		if totals[k] == 0 {
			order = append(order, k)
		}
		totals[k]++
	}
	var parts []string
	for _, k := range []string{"email", "sms", "notification", "queued", "failed"} {
		if totals[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, totals[k]))
		}
	}
	for _, k := range order {
		switch k {
		case "email", "sms", "notification", "queued", "failed":
		default:
			parts = append(parts, fmt.Sprintf("%s %d", k, totals[k]))
		}
	}
	fmt.Fprintf(out, "\ntotals (%d contacts, routed in %s, %.0f dispatches/s): %s\n", total, took.Round(time.Millisecond),
		float64(total)/took.Seconds(), strings.Join(parts, ", "))
}
