package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
)

// Request is the campaign webhook call (DESIGN.md 4.1), made of primitives.
type Request struct {
	ContactID      int64
	MessageID      int64
	CampaignID     int64 // 0 when absent
	EventID        int64 // 0 when absent
	IdempotencyKey string
}

// Limits of the ids, from the column types: leads.id is BIGINT UNSIGNED
// (we keep it in int64), the others INT UNSIGNED.
const (
	maxContactID = 1<<63 - 1
	maxIntID     = 1<<32 - 1
	maxKeyLen    = 191
	// MaxBody is the largest request body accepted.
	MaxBody = 64 << 10
)

// requestError is a 400 with a message naming the field.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// Content kinds accepted for POST.
const (
	contentForm = "form"
	contentJSON = "json"
)

// contentKind classifies a Content-Type header: "form", "json", or "" for
// anything else (a 415), including a missing header.
func contentKind(header string) string {
	if strings.TrimSpace(header) == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return ""
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		return contentForm
	case "application/json":
		return contentJSON
	}
	return ""
}

// fields is the raw field values, each given at most once.
type fields map[string]string

// formFields parses a query string or form body. Repeated known fields are
// an error; unknown fields are ignored (admins may send extra data).
func formFields(raw string) (fields, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("the form data is not valid URL encoding")
	}
	out := fields{}
	for _, k := range knownFields {
		vs, ok := vals[k]
		if !ok {
			continue
		}
		if len(vs) > 1 {
			return nil, badRequest("%s is given more than once", k)
		}
		out[k] = vs[0]
	}
	return out, nil
}

var knownFields = []string{"contact_id", "message_id", "campaign_id", "event_id", "idempotency_key"}

func isKnown(k string) bool {
	for _, f := range knownFields {
		if f == k {
			return true
		}
	}
	return false
}

// jsonFields parses a JSON object whose values are strings or numbers (Mautic
// sends every value as a string). Nested values and repeated keys are errors.
func jsonFields(body []byte) (fields, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, badRequest("the body is not valid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, badRequest("the JSON body must be an object")
	}
	out := fields{}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, badRequest("the body is not valid JSON")
		}
		key, _ := kt.(string)
		if seen[key] {
			return nil, badRequest("%s is given more than once", printable(key))
		}
		seen[key] = true
		vt, err := dec.Token()
		if err != nil {
			return nil, badRequest("the body is not valid JSON")
		}
		var val string
		switch v := vt.(type) {
		case json.Delim:
			if isKnown(key) {
				return nil, badRequest("%s must be a string or a number, not an object or array", key)
			}
			if err := skipValue(dec, v); err != nil {
				return nil, err
			}
			continue
		case string:
			val = v
		case json.Number:
			val = v.String()
		case nil:
			if isKnown(key) {
				return nil, badRequest("%s must not be null", key)
			}
			continue
		case bool:
			if isKnown(key) {
				return nil, badRequest("%s must be a string or a number", key)
			}
			continue
		}
		if isKnown(key) {
			out[key] = val
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, badRequest("the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("the body has data after the JSON object")
	}
	return out, nil
}

// skipValue consumes a nested value of an unknown field, bounding its depth.
func skipValue(dec *json.Decoder, open json.Delim) error {
	depth := 1
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return badRequest("the body is not valid JSON")
		}
		if d, ok := t.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
				if depth > 32 {
					return badRequest("the JSON body is nested too deeply")
				}
			default:
				depth--
			}
		}
	}
	_ = open
	return nil
}

// parseRequest validates the fields (DESIGN.md 4.1).
func parseRequest(f fields) (Request, error) {
	var r Request
	var err error
	if r.ContactID, err = parseID(f, "contact_id", true, maxContactID); err != nil {
		return r, err
	}
	if r.MessageID, err = parseID(f, "message_id", true, maxIntID); err != nil {
		return r, err
	}
	if r.CampaignID, err = parseID(f, "campaign_id", false, maxIntID); err != nil {
		return r, err
	}
	if r.EventID, err = parseID(f, "event_id", false, maxIntID); err != nil {
		return r, err
	}
	if k, ok := f["idempotency_key"]; ok {
		if !validKey(k) {
			return r, badRequest("idempotency_key must be 1 to %d printable ASCII characters", maxKeyLen)
		}
		r.IdempotencyKey = k
	}
	return r, nil
}

func parseID(f fields, name string, required bool, max uint64) (int64, error) {
	raw, ok := f[name]
	if !ok {
		if required {
			return 0, badRequest("%s is required", name)
		}
		return 0, nil
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return 0, badRequest("%s must be a positive integer", name)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, badRequest("%s must be a positive integer", name)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, badRequest("%s is out of range (at most %d)", name, max)
	}
	if v == 0 {
		return 0, badRequest("%s must be a positive integer", name)
	}
	return int64(v), nil
}

func validKey(k string) bool {
	if len(k) < 1 || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// printable shortens and sanitizes user input quoted in an error message.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.QuoteToASCII(s)
}

// parseQueryStrict is url.ParseQuery.
func parseQueryStrict(raw string) (map[string][]string, error) { return url.ParseQuery(raw) }
