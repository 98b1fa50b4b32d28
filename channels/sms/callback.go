package sms

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio signs callbacks with HMAC-SHA1.
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mautic-mm/sidecar/channels"
)

// SignatureHeader is the header carrying Twilio's request signature.
const SignatureHeader = "X-Twilio-Signature"

// ValidSignature reports whether signature (the X-Twilio-Signature header)
// is Twilio's signature of a callback: base64 HMAC-SHA1, keyed with the
// auth token, of the full URL Twilio called (scheme, host, path and query,
// exactly as configured in StatusCallback) followed by every POST parameter
// name and value, sorted by name. form holds the POST parameters only
// (http.Request.PostForm), never the query. The URL is also tried with the
// default port added or removed, as Twilio's own libraries do. The
// comparison runs in constant time.
func ValidSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return false
	}
	ok := 0
	for _, u := range urlVariants(fullURL) {
		ok |= subtle.ConstantTimeCompare(sign(authToken, u, form), got)
	}
	return ok == 1
}

// Sign returns the X-Twilio-Signature value Twilio would send for a POST of
// form to fullURL. The sandbox and tests use it.
func Sign(authToken, fullURL string, form url.Values) string {
	return base64.StdEncoding.EncodeToString(sign(authToken, fullURL, form))
}

func sign(authToken, fullURL string, form url.Values) []byte {
	var b strings.Builder
	b.WriteString(fullURL)
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vals := slices.Clone(form[k])
		slices.Sort(vals)
		vals = slices.Compact(vals) // Twilio's libraries sign each distinct value once
		for _, v := range vals {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return mac.Sum(nil)
}

// urlVariants returns fullURL, and the same URL with the scheme's default
// port added (or removed when present).
func urlVariants(fullURL string) []string {
	out := []string{fullURL}
	u, err := url.Parse(fullURL)
	if err != nil || u.Host == "" {
		return out
	}
	def := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	if def == "" {
		return out
	}
	v := *u
	switch u.Port() {
	case "":
		v.Host = u.Host + ":" + def
	case def:
		v.Host = u.Hostname()
		if strings.Contains(v.Host, ":") { // IPv6 literal
			v.Host = "[" + v.Host + "]"
		}
	default:
		return out
	}
	return append(out, v.String())
}

// StatusCallback is what Twilio posts to a message's StatusCallback URL
// (and, for an inbound message, to the number's messaging webhook).
type StatusCallback struct {
	AccountSID    string
	MessageSID    string
	MessageStatus string // queued, sending, sent, delivered, undelivered, failed, ...
	ErrorCode     string // Twilio error code, empty when none
	ErrorMessage  string
	To            string
	From          string
	Body          string // inbound messages only
	// Stat is the tracking hash of the sms_message_stats row, from the
	// ?stat= query parameter the sender appended to the callback URL.
	Stat string
}

// ParseStatusCallback reads a callback from form, which must hold both the
// POST parameters and the URL query (http.Request.Form after ParseForm), so
// that the stat parameter is found.
func ParseStatusCallback(form url.Values) StatusCallback {
	return StatusCallback{
		AccountSID:    form.Get("AccountSid"),
		MessageSID:    form.Get("MessageSid"),
		MessageStatus: strings.ToLower(form.Get("MessageStatus")),
		ErrorCode:     strings.TrimSpace(form.Get("ErrorCode")),
		ErrorMessage:  form.Get("ErrorMessage"),
		To:            form.Get("To"),
		From:          form.Get("From"),
		Body:          form.Get("Body"),
		Stat:          form.Get("stat"),
	}
}

// Failed reports whether the callback says the message was not delivered
// (status failed or undelivered).
func (c StatusCallback) Failed() bool {
	return c.MessageStatus == "failed" || c.MessageStatus == "undelivered"
}

// Delivered reports whether the callback confirms delivery.
func (c StatusCallback) Delivered() bool { return c.MessageStatus == "delivered" }

// OptOut reports whether the callback means the contact opted out: an
// inbound opt-out keyword (see IsOptOutKeyword) or error code 21610.
func (c StatusCallback) OptOut() bool {
	return c.ErrorCode == "21610" || IsOptOutKeyword(c.Body)
}

// FailureKind classifies a failed callback for routing: OptedOut for an
// opt-out (21610), Unreachable for a dead number (21211, 21214, 21217,
// 21407, 21614; 30005 unknown handset; 30006 landline or unreachable
// carrier), Permanent otherwise. It returns ok false when the callback is
// not a failure.
func (c StatusCallback) FailureKind() (kind channels.Kind, ok bool) {
	if !c.Failed() {
		return 0, false
	}
	code, _ := strconv.Atoi(c.ErrorCode)
	switch {
	case optedOutCodes[code]:
		return channels.KindOptedOut, true
	case unreachableCodes[code], code == 30005, code == 30006:
		return channels.KindUnreachable, true
	}
	return channels.KindPermanent, true
}

// optOutKeywords are Twilio's default opt-out keywords (Advanced Opt-Out):
// the classic six plus OPTOUT and REVOKE, which Twilio added for US
// messaging.
var optOutKeywords = map[string]bool{
	"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true,
	"END": true, "QUIT": true, "OPTOUT": true, "REVOKE": true,
}

// IsOptOutKeyword reports whether an inbound message body is an opt-out
// keyword, ignoring case and surrounding spaces and punctuation.
func IsOptOutKeyword(body string) bool {
	w := strings.ToUpper(strings.Trim(body, " \t\r\n.!"))
	return optOutKeywords[w]
}
