package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/mautic-mm/sidecar/mautic"
)

// Secret is a configuration value that is never printed.
type Secret string

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "xxxxx"
}

// LogValue masks the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Config is the whole configuration: DESIGN.md section 3, plus a few
// settings of our own (marked "ours"). Defaults live in the envDefault tags
// and nowhere else. Flags mirror every variable: SIDECAR_WORKERS is
// --sidecar-workers, and a flag wins over the environment.
type Config struct {
	DBDSN        Secret `env:"MAUTIC_DB_DSN" envDefault:"root@tcp(127.0.0.1:3306)/mautic" help:"go-sql-driver DSN of Mautic's database"`
	TablePrefix  string `env:"MAUTIC_TABLE_PREFIX" help:"Mautic's db_table_prefix"`
	SiteURL      string `env:"MAUTIC_SITE_URL" help:"Mautic's site_url (email tracking and unsubscribe URLs)"`
	SecretKey    Secret `env:"MAUTIC_SECRET_KEY" help:"Mautic's secret_key (integration keys, unsubscribe hashes)"`
	EmailFreqNum int    `env:"MAUTIC_EMAIL_FREQUENCY_NUMBER" envDefault:"0" help:"global default email limit (0 = off)"`
	EmailFreqTim string `env:"MAUTIC_EMAIL_FREQUENCY_TIME" envDefault:"DAY" help:"DAY, WEEK or MONTH"`
	SMSFreqNum   int    `env:"MAUTIC_SMS_FREQUENCY_NUMBER" envDefault:"0" help:"global default SMS limit (0 = off)"`
	SMSFreqTim   string `env:"MAUTIC_SMS_FREQUENCY_TIME" envDefault:"DAY" help:"DAY, WEEK or MONTH"`

	Listen          string        `env:"SIDECAR_LISTEN" envDefault:":8080" help:"HTTP address"`
	Token           Secret        `env:"SIDECAR_TOKEN" help:"bearer token required on /v1/* (serve refuses to start without it)"`
	Workers         int           `env:"SIDECAR_WORKERS" envDefault:"16" help:"concurrent dispatch workers per process (0: intake only, no routing here)"`
	MaxBacklog      int           `env:"SIDECAR_MAX_BACKLOG" envDefault:"100000" help:"accepted, unrouted dispatches above which intake answers 429"`
	DedupWindow     time.Duration `env:"SIDECAR_DEDUP_WINDOW" envDefault:"24h" help:"duplicate-request window"`
	RetryMax        int           `env:"SIDECAR_RETRY_MAX" envDefault:"3" help:"provider calls per channel on transient failures"`
	RetryBase       time.Duration `env:"SIDECAR_RETRY_BASE" envDefault:"2s" help:"first retry delay (exponential, capped at 1m, jittered)"`
	ShutdownTimeout time.Duration `env:"SIDECAR_SHUTDOWN_TIMEOUT" envDefault:"15s" help:"graceful stop bound"`
	Queue           string        `env:"SIDECAR_QUEUE" envDefault:"sidecar" help:"sidecar: drain message_queue here; mautic: leave it to Mautic"`
	LogLevel        string        `env:"SIDECAR_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat       string        `env:"SIDECAR_LOG_FORMAT" envDefault:"json" help:"json or text"`

	// Ours: not fixed by DESIGN.md.
	PublicURL     string        `env:"SIDECAR_PUBLIC_URL" help:"(ours) URL Mautic and providers reach this sidecar at; enables Twilio status callbacks"`
	BatchSize     int           `env:"SIDECAR_BATCH_SIZE" envDefault:"128" help:"(ours) the most dispatches a worker routes per batch; fewer while providers are slow"`
	QueueBatch    int           `env:"SIDECAR_QUEUE_BATCH_SIZE" envDefault:"128" help:"(ours) message_queue rows a queue worker claims and sends per batch"`
	Lease         time.Duration `env:"SIDECAR_LEASE" envDefault:"30s" help:"(ours) bound on one routing transaction; work of a dead or stuck worker is resumed after it"`
	DBMaxConns    int           `env:"SIDECAR_DB_MAX_CONNS" envDefault:"64" help:"(ours) database connection pool size"`
	RateLimits    string        `env:"SIDECAR_RATE_LIMITS" help:"(ours) per-channel send rate limits, e.g. email:50,sms:10 (sends/second; burst = rate)"`
	BreakerFails  int           `env:"SIDECAR_BREAKER_FAILURES" envDefault:"5" help:"(ours) consecutive transient failures that open a sender's circuit breaker (0 = off)"`
	BreakerOpen   time.Duration `env:"SIDECAR_BREAKER_TIMEOUT" envDefault:"30s" help:"(ours) how long an open breaker rejects before trying again"`
	SendTimeout   time.Duration `env:"SIDECAR_SEND_TIMEOUT" envDefault:"10s" help:"(ours) timeout of one provider call"`
	IntakeWriters int           `env:"SIDECAR_INTAKE_WRITERS" envDefault:"1" help:"(ours) concurrent intake transactions; fewer means bigger batches per commit"`
	PprofAddr     string        `env:"SIDECAR_PPROF" help:"(ours) address of a Go profiling endpoint (net/http/pprof), e.g. 127.0.0.1:6060; off when empty"`

	SMTPURL  Secret `env:"SMTP_URL" help:"smtp://user:pass@host:port (STARTTLS when offered) or smtps:// (implicit TLS)"`
	SMTPFrom string `env:"SMTP_FROM" help:"default sender when the email has none"`

	TwilioAccountSID          string `env:"TWILIO_ACCOUNT_SID" help:"Twilio Account SID"`
	TwilioAuthToken           Secret `env:"TWILIO_AUTH_TOKEN" help:"Twilio Auth Token"`
	TwilioMessagingServiceSID string `env:"TWILIO_MESSAGING_SERVICE_SID" help:"Twilio Messaging Service SID"`
	TwilioFrom                string `env:"TWILIO_FROM" help:"sender number when no Messaging Service is set"`
	TwilioAPIBase             string `env:"TWILIO_API_BASE" envDefault:"https://api.twilio.com" help:"Twilio API base URL"`
	SMSDefaultRegion          string `env:"SMS_DEFAULT_REGION" envDefault:"US" help:"region for numbers without a country code"`

	OneSignalAppID      string `env:"ONESIGNAL_APP_ID" help:"OneSignal app id"`
	OneSignalRESTAPIKey Secret `env:"ONESIGNAL_REST_API_KEY" help:"OneSignal REST API key"`
	OneSignalAPIBase    string `env:"ONESIGNAL_API_BASE" envDefault:"https://onesignal.com" help:"OneSignal API base URL"`

	XConsumerKey    Secret `env:"X_CONSUMER_KEY" help:"X (Twitter) OAuth 1.0a consumer key"`
	XConsumerSecret Secret `env:"X_CONSUMER_SECRET" help:"X consumer secret"`
	XAccessToken    Secret `env:"X_ACCESS_TOKEN" help:"X access token"`
	XAccessSecret   Secret `env:"X_ACCESS_SECRET" help:"X access token secret"`
	XAPIBase        string `env:"X_API_BASE" envDefault:"https://api.x.com" help:"X API base URL"`

	// Environ is the raw environment, for CHANNEL_<KEY>_WEBHOOK_URL/_SECRET.
	Environ []string `env:"-"`
}

// flagName turns SIDECAR_WORKERS into sidecar-workers.
func flagName(envName string) string { return strings.ReplaceAll(strings.ToLower(envName), "_", "-") }

// loadConfig reads the environment (through getenv/environ), then the flags
// in fs that mirror it, then validates. fs must have been prepared with
// registerConfigFlags and parsed by the caller.
func loadConfig(environ []string, fs *flag.FlagSet) (Config, error) {
	envMap := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: envMap}); err != nil {
		return cfg, fmt.Errorf("configuration: %s", envNames(err.Error()))
	}
	cfg.Environ = environ
	if fs != nil {
		var ferr error
		fs.Visit(func(f *flag.Flag) {
			if ferr != nil {
				return
			}
			if envName, ok := flagToEnv[f.Name]; ok {
				if err := setField(&cfg, envName, f.Value.String()); err != nil {
					ferr = fmt.Errorf("flag --%s: %w", f.Name, err)
				}
			}
		})
		if ferr != nil {
			return cfg, ferr
		}
	}
	return cfg, cfg.Validate()
}

var flagToEnv = map[string]string{}

// envNames rewrites the env library's field names into variable names, so
// an error says SIDECAR_WORKERS rather than Workers.
func envNames(msg string) string {
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if name := t.Field(i).Tag.Get("env"); name != "" && name != "-" {
			msg = strings.ReplaceAll(msg, `field "`+t.Field(i).Name+`"`, name)
		}
	}
	return msg
}

// String prints the configuration with its secrets masked (also for %v).
func (c Config) String() string {
	var b strings.Builder
	c.Print(&b)
	return b.String()
}

// GoString masks secrets for %#v too.
func (c Config) GoString() string { return c.String() }

// LogValue masks secrets in slog output.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// registerConfigFlags adds one string flag per variable to fs.
func registerConfigFlags(fs *flag.FlagSet) {
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		fn := flagName(name)
		flagToEnv[fn] = name
		if fs.Lookup(fn) == nil {
			fs.String(fn, "", "overrides "+name+": "+f.Tag.Get("help"))
		}
	}
}

// setField sets the field tagged envName from a string.
func setField(cfg *Config, envName, raw string) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("env") != envName {
			continue
		}
		fv := v.Field(i)
		switch fv.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(raw)
			if err != nil {
				return err
			}
			fv.SetInt(int64(d))
		case int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				return err
			}
			fv.SetInt(int64(n))
		default:
			fv.SetString(raw)
		}
		return nil
	}
	return fmt.Errorf("unknown variable %s", envName)
}

// Validate checks everything that can be checked without a network.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(string(c.DBDSN)) == "" {
		bad("MAUTIC_DB_DSN is empty")
	} else if _, err := mautic.NormalizeDSN(string(c.DBDSN)); err != nil {
		bad("MAUTIC_DB_DSN: not a valid go-sql-driver DSN")
	}
	if err := mautic.ValidatePrefix(c.TablePrefix); err != nil {
		bad("MAUTIC_TABLE_PREFIX: %v", err)
	}
	if c.SiteURL != "" {
		if u, err := url.Parse(c.SiteURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("MAUTIC_SITE_URL %q: want an absolute http(s) URL", c.SiteURL)
		}
	}
	if c.SecretKey != "" {
		if b, err := hex.DecodeString(string(c.SecretKey)); err != nil || len(b) != 32 {
			bad("MAUTIC_SECRET_KEY: want Mautic's secret_key, 64 hexadecimal characters")
		}
	}
	for _, p := range []struct {
		name string
		n    int
		unit string
	}{{"MAUTIC_EMAIL_FREQUENCY", c.EmailFreqNum, c.EmailFreqTim}, {"MAUTIC_SMS_FREQUENCY", c.SMSFreqNum, c.SMSFreqTim}} {
		if p.n < 0 {
			bad("%s_NUMBER must be 0 or more", p.name)
		}
		if !mautic.Unit(p.unit).Valid() {
			bad("%s_TIME %q: want DAY, WEEK or MONTH", p.name, p.unit)
		}
	}
	if c.Listen == "" {
		bad("SIDECAR_LISTEN is empty")
	}
	if c.Workers < 0 || c.Workers > 1024 {
		bad("SIDECAR_WORKERS must be between 0 (intake only) and 1024")
	}
	if c.MaxBacklog < 1 {
		bad("SIDECAR_MAX_BACKLOG must be at least 1")
	}
	if c.DedupWindow < 0 {
		bad("SIDECAR_DEDUP_WINDOW must not be negative")
	}
	if c.RetryMax < 1 {
		bad("SIDECAR_RETRY_MAX must be at least 1 (the first call)")
	}
	if c.RetryBase <= 0 {
		bad("SIDECAR_RETRY_BASE must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		bad("SIDECAR_SHUTDOWN_TIMEOUT must be positive")
	}
	if c.Queue != "sidecar" && c.Queue != "mautic" {
		bad("SIDECAR_QUEUE %q: want sidecar or mautic", c.Queue)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("SIDECAR_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("SIDECAR_LOG_FORMAT %q: want json or text", c.LogFormat)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("SIDECAR_PUBLIC_URL %q: want an absolute http(s) URL", c.PublicURL)
		}
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		bad("SIDECAR_BATCH_SIZE must be between 1 and 1000")
	}
	if c.QueueBatch < 1 || c.QueueBatch > 1000 {
		bad("SIDECAR_QUEUE_BATCH_SIZE must be between 1 and 1000")
	}
	if c.Lease < time.Second {
		bad("SIDECAR_LEASE must be at least 1s")
	}
	if c.DBMaxConns < 4 {
		bad("SIDECAR_DB_MAX_CONNS must be at least 4")
	}
	if _, err := c.rateLimits(); err != nil {
		bad("SIDECAR_RATE_LIMITS: %v", err)
	}
	if c.BreakerFails < 0 {
		bad("SIDECAR_BREAKER_FAILURES must not be negative")
	}
	if c.SendTimeout <= 0 {
		bad("SIDECAR_SEND_TIMEOUT must be positive")
	}
	if c.IntakeWriters < 1 || c.IntakeWriters > 64 {
		bad("SIDECAR_INTAKE_WRITERS must be between 1 and 64")
	}
	for name, base := range map[string]string{"TWILIO_API_BASE": c.TwilioAPIBase, "ONESIGNAL_API_BASE": c.OneSignalAPIBase, "X_API_BASE": c.XAPIBase} {
		if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s %q: want an absolute http(s) URL", name, base)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// rateLimits parses SIDECAR_RATE_LIMITS ("email:50,sms:10").
func (c Config) rateLimits() (map[string]float64, error) {
	out := map[string]float64{}
	if strings.TrimSpace(c.RateLimits) == "" {
		return out, nil
	}
	for _, part := range strings.Split(c.RateLimits, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want channel:rate", part)
		}
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 {
			return nil, fmt.Errorf("%q: rate must be a number >= 0", part)
		}
		out[strings.ToLower(k)] = r
	}
	return out, nil
}

// frequencyDefaults returns the global default limits per channel.
func (c Config) frequencyDefaults() map[string]mautic.Limit {
	return map[string]mautic.Limit{
		"email": {Number: c.EmailFreqNum, Unit: mautic.Unit(c.EmailFreqTim)},
		"sms":   {Number: c.SMSFreqNum, Unit: mautic.Unit(c.SMSFreqTim)},
	}
}

// Print writes the configuration as a table, secrets masked (the DSN's
// password too).
func (c Config) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		val := fmt.Sprint(v.Field(i).Interface())
		switch name {
		case "MAUTIC_DB_DSN":
			val = mautic.RedactDSN(string(c.DBDSN))
		case "SMTP_URL":
			val = redactURL(string(c.SMTPURL))
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, val)
	}
	_ = tw.Flush()
}

// redactURL masks the password of a URL.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// dsn returns the DSN as a plain string (for opening the database).
func (c Config) dsn() string { return string(c.DBDSN) }
