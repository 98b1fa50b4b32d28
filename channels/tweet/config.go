package tweet

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/mautic-mm/sidecar/channels"
)

// DefaultBaseURL is X's API root (X_API_BASE when unset).
const DefaultBaseURL = "https://api.x.com"

// Config is the X sender's configuration: an app's consumer key and secret
// and a user's access token and secret (OAuth 1.0a user context). The
// environment variable of each field is given in its comment.
type Config struct {
	// ConsumerKey is X_CONSUMER_KEY. Treated as a secret: never printed.
	ConsumerKey string
	// ConsumerSecret is X_CONSUMER_SECRET. Secret.
	ConsumerSecret string
	// AccessToken is X_ACCESS_TOKEN. Treated as a secret.
	AccessToken string
	// AccessSecret is X_ACCESS_SECRET. Secret.
	AccessSecret string
	// BaseURL is X_API_BASE (default DefaultBaseURL).
	BaseURL string
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	return c
}

// Validate reports what is missing or malformed, all problems at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"consumer key", c.ConsumerKey}, {"consumer secret", c.ConsumerSecret},
		{"access token", c.AccessToken}, {"access secret", c.AccessSecret},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if err := channels.CheckHTTPURL(c.BaseURL, false); err != nil {
		errs = append(errs, fmt.Errorf("base url: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tweet config: %w", err)
	}
	return nil
}

// secrets returns the four credentials, for redaction.
func (c Config) secrets() []string {
	return []string{c.ConsumerKey, c.ConsumerSecret, c.AccessToken, c.AccessSecret}
}

// String prints the configuration with all four credentials masked.
func (c Config) String() string {
	return fmt.Sprintf("tweet.Config{ConsumerKey:%s ConsumerSecret:%s AccessToken:%s AccessSecret:%s BaseURL:%q}",
		channels.MaskSecret(c.ConsumerKey), channels.MaskSecret(c.ConsumerSecret),
		channels.MaskSecret(c.AccessToken), channels.MaskSecret(c.AccessSecret), c.BaseURL)
}

// GoString is String, so %#v masks the credentials too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the credentials masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("consumer_key", channels.MaskSecret(c.ConsumerKey)),
		slog.String("consumer_secret", channels.MaskSecret(c.ConsumerSecret)),
		slog.String("access_token", channels.MaskSecret(c.AccessToken)),
		slog.String("access_secret", channels.MaskSecret(c.AccessSecret)),
		slog.String("base_url", c.BaseURL),
	)
}
