package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/mautic-mm/sidecar/channels"
)

// Config is one custom channel's webhook. Environment variables, for a
// channel key KEY (upper case in the variable name):
// CHANNEL_<KEY>_WEBHOOK_URL, CHANNEL_<KEY>_WEBHOOK_SECRET (or
// CHANNEL_<KEY>_WEBHOOK_SECRET_FILE, a file holding it).
type Config struct {
	// Channel is the custom channel key, as in message_channels.channel.
	Channel channels.Name
	// URL receives the JSON POST. It may carry credentials (user info or a
	// query token): they are never printed.
	URL string
	// Secret, when set, signs each delivery (X-Sidecar-Signature). Secret:
	// never printed.
	Secret string
}

// channelRe is a channel key: what Mautic accepts as a channel name, in
// lower case.
var channelRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// builtIn are the channels with their own sender and their own Mautic
// stats table; a webhook cannot serve them (see ConfigsFromEnv).
var builtIn = []channels.Name{channels.Email, channels.SMS, channels.Notification, channels.MobileNotification, channels.Tweet}

// Validate reports what is missing or malformed, all problems at once.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Channel == "":
		errs = append(errs, errors.New("channel is required"))
	case !channelRe.MatchString(string(c.Channel)):
		errs = append(errs, fmt.Errorf("channel %q must be lower-case letters, digits and underscores", c.Channel))
	case slices.Contains(builtIn, c.Channel):
		errs = append(errs, fmt.Errorf("channel %q has its own sender and cannot be a webhook", c.Channel))
	}
	if c.URL == "" {
		errs = append(errs, errors.New("url is required"))
	} else if err := channels.CheckHTTPURL(c.URL, true); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if strings.ContainsAny(c.Secret, "\r\n") {
		errs = append(errs, errors.New("secret contains line breaks"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook config %s: %w", c.Channel, err)
	}
	return nil
}

// String prints the configuration with the secret masked and the URL
// redacted (password and query values hidden).
func (c Config) String() string {
	return fmt.Sprintf("webhook.Config{Channel:%q URL:%q Secret:%s}", c.Channel, redactURL(c.URL), channels.MaskSecret(c.Secret))
}

// GoString is String, so %#v masks the secret too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the secret masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("channel", string(c.Channel)),
		slog.String("url", redactURL(c.URL)),
		slog.String("secret", channels.MaskSecret(c.Secret)),
	)
}

// redactURL hides the user info and the query values of raw.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if raw == "" {
			return ""
		}
		return "[unparsable url]"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"redacted"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}

// Environment variable name parts.
const (
	envPrefix     = "CHANNEL_"
	envURL        = "_WEBHOOK_URL"
	envSecret     = "_WEBHOOK_SECRET"
	envSecretFile = "_WEBHOOK_SECRET_FILE"
)

// ConfigsFromEnv reads every custom channel webhook from environ (as
// os.Environ returns it): CHANNEL_<KEY>_WEBHOOK_URL serves channel
// strings.ToLower(KEY), signed with CHANNEL_<KEY>_WEBHOOK_SECRET or the
// trimmed content of the file named by CHANNEL_<KEY>_WEBHOOK_SECRET_FILE.
//
// An empty URL variable counts as unset. It is an error to give a secret
// without a URL, both a secret and a secret file, a malformed URL, a key
// that is not letters, digits and underscores, two variables that name the
// same channel in different case, or one of the built-in channels (email,
// sms, notification, mobile_notification, tweet): those have dedicated
// senders and Mautic stats tables of their own, and the webhook payload
// only carries a custom channel's properties. All problems are reported
// together.
func ConfigsFromEnv(environ []string) (map[channels.Name]Config, error) {
	type entry struct {
		url, secret, secretFile string
		hasSecret, hasFile      bool
		names                   []string
	}
	entries := map[channels.Name]*entry{}
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		rest := strings.TrimPrefix(name, envPrefix)
		var key, kind string
		for _, suffix := range []string{envSecretFile, envSecret, envURL} {
			if strings.HasSuffix(rest, suffix) {
				key, kind = strings.TrimSuffix(rest, suffix), suffix
				break
			}
		}
		if kind == "" {
			continue
		}
		ch := channels.Name(strings.ToLower(key))
		if key == "" || !channelRe.MatchString(string(ch)) {
			errs = append(errs, fmt.Errorf("%s: channel key %q must be letters, digits and underscores", name, key))
			continue
		}
		e := entries[ch]
		if e == nil {
			e = &entry{}
			entries[ch] = e
		}
		e.names = append(e.names, name)
		switch kind {
		case envURL:
			if e.url != "" {
				errs = append(errs, fmt.Errorf("%s: channel %q has more than one url variable", name, ch))
			}
			e.url = value
		case envSecret:
			e.secret, e.hasSecret = value, value != ""
		case envSecretFile:
			e.secretFile, e.hasFile = value, value != ""
		}
	}

	out := map[channels.Name]Config{}
	for _, ch := range slices.Sorted(maps.Keys(entries)) {
		e := entries[ch]
		if e.url == "" {
			if e.hasSecret || e.hasFile {
				errs = append(errs, fmt.Errorf("channel %q: a webhook secret is set but CHANNEL_%s_WEBHOOK_URL is not", ch, strings.ToUpper(string(ch))))
			}
			continue
		}
		cfg := Config{Channel: ch, URL: e.url, Secret: e.secret}
		if e.hasSecret && e.hasFile {
			errs = append(errs, fmt.Errorf("channel %q: both a webhook secret and a secret file are set", ch))
			continue
		}
		if e.hasFile {
			b, err := os.ReadFile(e.secretFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("channel %q: read webhook secret file: %w", ch, err))
				continue
			}
			cfg.Secret = strings.TrimSpace(string(b))
			if cfg.Secret == "" {
				errs = append(errs, fmt.Errorf("channel %q: webhook secret file is empty", ch))
				continue
			}
		}
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		out[ch] = cfg
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
