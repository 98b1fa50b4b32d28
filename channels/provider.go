package channels

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What every sender that calls a provider's HTTP API (Twilio, OneSignal,
// X, custom webhooks) does the same way: read Retry-After, classify a
// failed round trip, describe an answer, check a configured URL, mask a
// secret.

// RetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when the header is absent, unparsable or in the past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// TransportError classifies a failed round trip to provider (a name such
// as "twilio"): always transient (timeout, refused or reset connection,
// cancelled context). The URL, which url.Error would print and which may
// hold credentials, is left out of the text.
func TransportError(ctx context.Context, provider string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctx.Err() != nil {
		return Transient(fmt.Errorf("%s request: %w", provider, ctx.Err()), 0)
	}
	if uerr != nil && uerr.Timeout() {
		return Transient(fmt.Errorf("%s request timed out: %w", provider, err), 0)
	}
	return Transient(fmt.Errorf("%s request: %w", provider, err), 0)
}

// DescribeContentType names an answer's content type for an error text.
func DescribeContentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return "content type " + ct
	}
	return "no content type"
}

// CheckHTTPURL checks a configured provider URL: http or https with a
// host, and without user info unless allowUserInfo (a custom webhook's
// receiver may take basic auth in its URL; a provider's API base must not
// carry credentials that belong in their own variables).
func CheckHTTPURL(raw string, allowUserInfo bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a url")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("host is missing")
	}
	if u.User != nil && !allowUserInfo {
		return errors.New("credentials in the url are not allowed")
	}
	return nil
}

// MaskSecret is how a sender's Config prints a secret: `""` when unset,
// else "[redacted]".
func MaskSecret(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}
