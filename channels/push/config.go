package push

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mautic-mm/sidecar/channels"
)

// DefaultBaseURL is OneSignal's API root (ONESIGNAL_API_BASE when unset).
const DefaultBaseURL = "https://onesignal.com"

// Config is the OneSignal sender's configuration. The environment variable
// of each field is given in its comment.
type Config struct {
	// AppID is ONESIGNAL_APP_ID.
	AppID string
	// RESTAPIKey is ONESIGNAL_REST_API_KEY. Secret: never printed.
	RESTAPIKey string
	// BaseURL is ONESIGNAL_API_BASE (default DefaultBaseURL).
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
	switch {
	case c.AppID == "":
		errs = append(errs, errors.New("app id is required"))
	case strings.ContainsAny(c.AppID, "\"\\\r\n"):
		errs = append(errs, errors.New("app id contains quotes, backslashes or line breaks"))
	}
	switch {
	case c.RESTAPIKey == "":
		errs = append(errs, errors.New("rest api key is required"))
	case strings.ContainsAny(c.RESTAPIKey, "\r\n"):
		errs = append(errs, errors.New("rest api key contains line breaks"))
	}
	if err := channels.CheckHTTPURL(c.BaseURL, false); err != nil {
		errs = append(errs, fmt.Errorf("base url: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("push config: %w", err)
	}
	return nil
}

// String prints the configuration with the REST API key masked.
func (c Config) String() string {
	return fmt.Sprintf("push.Config{AppID:%q RESTAPIKey:%s BaseURL:%q}", c.AppID, channels.MaskSecret(c.RESTAPIKey), c.BaseURL)
}

// GoString is String, so %#v masks the key too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the REST API key masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app_id", c.AppID),
		slog.String("rest_api_key", channels.MaskSecret(c.RESTAPIKey)),
		slog.String("base_url", c.BaseURL),
	)
}
