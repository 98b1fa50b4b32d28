package sms

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/mautic-mm/sidecar/channels"
)

// DefaultBaseURL is Twilio's API root (TWILIO_API_BASE when unset).
const DefaultBaseURL = "https://api.twilio.com"

// DefaultRegion is the region of numbers stored without a country code
// (SMS_DEFAULT_REGION when unset), as in Mautic's Twilio transport.
const DefaultRegion = "US"

// Config is the Twilio sender's configuration. The environment variable of
// each field is given in its comment.
type Config struct {
	// AccountSID is TWILIO_ACCOUNT_SID. Not a secret: it is part of the URL.
	AccountSID string
	// AuthToken is TWILIO_AUTH_TOKEN. Secret: never printed.
	AuthToken string
	// MessagingServiceSID is TWILIO_MESSAGING_SERVICE_SID. When set it is
	// used instead of From, as Mautic does.
	MessagingServiceSID string
	// From is TWILIO_FROM: a Twilio number or alphanumeric sender id, used
	// when MessagingServiceSID is empty.
	From string
	// BaseURL is TWILIO_API_BASE (default DefaultBaseURL).
	BaseURL string
	// DefaultRegion is SMS_DEFAULT_REGION (default DefaultRegion): an ISO
	// 3166 region code for numbers without a country code.
	DefaultRegion string
	// StatusCallbackURL is TWILIO_STATUS_CALLBACK_URL (optional): the
	// public URL of the sidecar's POST /v1/callbacks/twilio. When set, each
	// message asks Twilio to report its status there, with ?stat=<tracking
	// hash> appended.
	StatusCallbackURL string
}

// withDefaults returns c with empty optional fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = DefaultRegion
	}
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	return c
}

// Validate reports what is missing or malformed, all problems at once.
// Empty optional fields are valid (their defaults apply).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	switch {
	case c.AccountSID == "":
		errs = append(errs, errors.New("account sid is required"))
	case strings.ContainsAny(c.AccountSID, "/?#% \t\r\n"):
		errs = append(errs, errors.New("account sid contains characters not allowed in a url path"))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("auth token is required"))
	}
	if c.MessagingServiceSID == "" && c.From == "" {
		errs = append(errs, errors.New("a messaging service sid or a from number is required"))
	}
	if err := channels.CheckHTTPURL(c.BaseURL, false); err != nil {
		errs = append(errs, fmt.Errorf("base url: %w", err))
	}
	if !supportedRegion(c.DefaultRegion) {
		errs = append(errs, fmt.Errorf("default region %q is not a region known to libphonenumber", c.DefaultRegion))
	}
	if c.StatusCallbackURL != "" {
		if err := channels.CheckHTTPURL(c.StatusCallbackURL, false); err != nil {
			errs = append(errs, fmt.Errorf("status callback url: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sms config: %w", err)
	}
	return nil
}

// String prints the configuration with the auth token masked.
func (c Config) String() string {
	return fmt.Sprintf("sms.Config{AccountSID:%q AuthToken:%s MessagingServiceSID:%q From:%q BaseURL:%q DefaultRegion:%q StatusCallbackURL:%q}",
		c.AccountSID, channels.MaskSecret(c.AuthToken), c.MessagingServiceSID, c.From, c.BaseURL, c.DefaultRegion, c.StatusCallbackURL)
}

// GoString is String, so %#v masks the token too.
func (c Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer with the auth token masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", c.AccountSID),
		slog.String("auth_token", channels.MaskSecret(c.AuthToken)),
		slog.String("messaging_service_sid", c.MessagingServiceSID),
		slog.String("from", c.From),
		slog.String("base_url", c.BaseURL),
		slog.String("default_region", c.DefaultRegion),
		slog.String("status_callback_url", c.StatusCallbackURL),
	)
}

func supportedRegion(region string) bool {
	_, ok := phonenumbers.GetSupportedRegions()[region]
	return ok
}
