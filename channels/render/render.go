// Package render replaces Mautic's contact tokens, {contactfield=alias} and
// {contactfield=alias|default}, in message content, with the semantics of
// Mautic's LeadBundle TokenHelper (mautic-reference.md 7.1).
//
// The package is pure: no I/O, no state. Senders call Find on every text
// they send, Tokens once for the contact, then Replace on each text.
package render

import (
	"sort"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels"
)

// Default PHP date formats, Mautic's defaults for date_format_dateonly and
// date_format_timeonly.
const (
	DefaultDateFormat = "F j, Y"
	DefaultTimeFormat = "g:i a"
)

// Options control how token values are computed.
type Options struct {
	// Company allows the primary company's fields as a fallback when the
	// contact has no (non-NULL) field of the alias. Mautic passes company
	// data for email only; SMS and push leave it off.
	Company bool
	// DateFormat is the PHP date() format of the |date default
	// (Mautic's date_format_dateonly). Empty means DefaultDateFormat.
	DateFormat string
	// TimeFormat is the PHP date() format of the |time default
	// (Mautic's date_format_timeonly). Empty means DefaultTimeFormat.
	TimeFormat string
}

const keyword = "contactfield="

// Find returns the distinct contact tokens of text, in order of first
// appearance.
//
// A token is "{" or "%7B", then "contactfield=", then the shortest run of
// characters other than a newline, then "}" or "%7D": the PCRE pattern
// /({|%7B)contactfield=(.*?)(}|%7D)/ Mautic uses, case-sensitive.
func Find(text string) []string {
	var out []string
	seen := map[string]bool{}
	// The next '{' and the next '%' (of %7B), each found with IndexByte,
	// which is much faster on long HTML than IndexAny, and looked for
	// again only once the scan has passed it.
	brace, pct := strings.IndexByte(text, '{'), strings.IndexByte(text, '%')
	for i := 0; i < len(text); {
		if brace >= 0 && brace < i {
			brace = indexFrom(text, '{', i)
		}
		if pct >= 0 && pct < i {
			pct = indexFrom(text, '%', i)
		}
		switch {
		case brace < 0 && pct < 0:
			return out
		case pct < 0 || (brace >= 0 && brace < pct):
			i = brace
		default:
			i = pct
		}
		end, ok := matchAt(text, i)
		if !ok {
			i++
			continue
		}
		tok := text[i:end]
		if !seen[tok] {
			seen[tok] = true
			out = append(out, tok)
		}
		i = end
	}
	return out
}

// indexFrom returns the index of the first c in text at or after i, or -1.
func indexFrom(text string, c byte, i int) int {
	if k := strings.IndexByte(text[i:], c); k >= 0 {
		return i + k
	}
	return -1
}

// matchAt reports whether a token starts at text[i] and where it ends.
func matchAt(text string, i int) (end int, ok bool) {
	var start int
	switch {
	case strings.HasPrefix(text[i:], "{"+keyword):
		start = i + 1 + len(keyword)
	case strings.HasPrefix(text[i:], "%7B"+keyword):
		start = i + 3 + len(keyword)
	default:
		return 0, false
	}
	for j := start; j < len(text); j++ {
		switch {
		case text[j] == '}':
			return j + 1, true
		case strings.HasPrefix(text[j:], "%7D"):
			return j + 3, true
		case text[j] == '\n':
			// PCRE's "." does not match a newline.
			return 0, false
		}
	}
	return 0, false
}

// parse splits a token text into its alias and default. ok is false when
// tok is not a whole contact token.
func parse(tok string) (alias, def string, ok bool) {
	end, ok := matchAt(tok, 0)
	if !ok || end != len(tok) {
		return "", "", false
	}
	inner := strings.TrimPrefix(tok, "{")
	inner = strings.TrimPrefix(inner, "%7B")
	inner = strings.TrimPrefix(inner, keyword)
	inner = strings.TrimSuffix(inner, "}")
	inner = strings.TrimSuffix(inner, "%7D")
	alias, rest, found := strings.Cut(inner, "|")
	if found {
		def, _, _ = strings.Cut(rest, "|")
	}
	return alias, def, true
}

// Tokens computes the value of each token text for contact c. Texts that
// are not contact tokens are left out of the result.
func Tokens(texts []string, c channels.Contact, o Options) map[string]string {
	out := make(map[string]string, len(texts))
	for _, tok := range texts {
		if _, done := out[tok]; done {
			continue
		}
		alias, def, ok := parse(tok)
		if !ok {
			continue
		}
		out[tok] = Value(alias, def, c, o)
	}
	return out
}

// Value computes one token's value from its alias and default, as Mautic's
// TokenHelper::getTokenValue does.
//
// The value is the contact's field when it exists and is not NULL (even when
// empty), else the primary company's field when o.Company is set, else "".
// A non-empty value is URL-encoded for the default "true" and formatted for
// "date", "time" and "datetime"; for those four defaults the result is the
// value even when empty, for any other default it is the value, or the
// default when the value is empty. A date that cannot be parsed is kept as
// it is.
func Value(alias, def string, c channels.Contact, o Options) string {
	value := ""
	if v, ok := c.Fields[alias]; ok && v != nil {
		value = *v
	} else if o.Company {
		if v := c.Company[alias]; v != nil {
			value = *v
		}
	}
	if value != "" {
		switch def {
		case "true":
			value = URLEncode(value)
		case "date", "time", "datetime":
			value = formatDate(value, def, o)
		}
	}
	switch def {
	case "true", "date", "time", "datetime":
		return value
	}
	if value != "" {
		return value
	}
	return def
}

// dateLayouts are the stored forms of Mautic date and datetime fields, plus
// RFC 3339 for values that come from elsewhere.
var dateLayouts = []string{
	time.DateTime,
	time.DateOnly,
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
}

func formatDate(value, kind string, o Options) string {
	t, ok := parseDate(value)
	if !ok {
		return value
	}
	df, tf := o.DateFormat, o.TimeFormat
	if df == "" {
		df = DefaultDateFormat
	}
	if tf == "" {
		tf = DefaultTimeFormat
	}
	switch kind {
	case "date":
		return PHPDate(t, df)
	case "time":
		return PHPDate(t, tf)
	default:
		return PHPDate(t, df) + " " + PHPDate(t, tf)
	}
}

func parseDate(value string) (time.Time, bool) {
	s := strings.TrimSpace(value)
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Replace replaces every occurrence of the keys of tokens in text by their
// values, in one left-to-right pass: replaced values are not scanned again.
// Where several keys match at one position the longest wins. With
// caseInsensitive (email, as PHP's str_ireplace) keys match with ASCII case
// folding; among keys equal but for case, an exact-case match is preferred,
// else the smallest key in byte order. Otherwise matching is exact (SMS,
// push).
//
// Mautic's str_replace applies the tokens one after another over the whole
// text, so a value containing another token's text is replaced again; one
// pass is deterministic and keeps contact data from expanding tokens.
func Replace(text string, tokens map[string]string, caseInsensitive bool) string {
	if len(tokens) == 0 || text == "" {
		return text
	}
	type key struct{ k, fold string }
	keys := make([]key, 0, len(tokens))
	var firsts []byte // distinct first bytes a match can start with
	addFirst := func(c byte) {
		if strings.IndexByte(string(firsts), c) < 0 {
			firsts = append(firsts, c)
		}
	}
	for k := range tokens {
		if k == "" {
			continue
		}
		f := k
		if caseInsensitive {
			f = asciiLower(k)
			addFirst(f[0])
			if 'a' <= f[0] && f[0] <= 'z' {
				addFirst(f[0] - ('a' - 'A'))
			}
		} else {
			addFirst(k[0])
		}
		keys = append(keys, key{k, f})
	}
	if len(keys) == 0 {
		return text
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i].k) != len(keys[j].k) {
			return len(keys[i].k) > len(keys[j].k)
		}
		return keys[i].k < keys[j].k
	})
	// next[n] is the next position >= the scan of firsts[n], -1 when there
	// is none: each first byte is found with IndexByte, which is fast on
	// long HTML, and looked for again only once the scan passes it.
	next := make([]int, len(firsts))
	for n, c := range firsts {
		next[n] = strings.IndexByte(text, c)
	}
	var b strings.Builder
	last := 0
	for i := 0; ; {
		// The nearest candidate at or after i.
		at := -1
		for n, c := range firsts {
			if next[n] >= 0 && next[n] < i {
				next[n] = indexFrom(text, c, i)
			}
			if next[n] >= 0 && (at < 0 || next[n] < at) {
				at = next[n]
			}
		}
		if at < 0 {
			break
		}
		i = at
		// keys are sorted longest first: the first folded match fixes the
		// length; an exact-case key of that length is preferred.
		match := ""
		for _, k := range keys {
			if match != "" && len(k.k) < len(match) {
				break
			}
			if len(text)-i < len(k.k) {
				continue
			}
			if strings.HasPrefix(text[i:], k.k) {
				match = k.k
				break
			}
			if match == "" && caseInsensitive && asciiEqualFold(text[i:i+len(k.fold)], k.fold) {
				match = k.k
			}
		}
		if match == "" {
			i++
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(text) + len(text)/16)
		}
		b.WriteString(text[last:i])
		b.WriteString(tokens[match])
		i += len(match)
		last = i
	}
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// asciiEqualFold reports whether s, lowered ASCII-only, equals lower (which
// is already lower-case). Unlike strings.EqualFold it folds nothing beyond
// A-Z, as PHP's str_ireplace.
func asciiEqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Contact replaces the contact tokens of text for c with exact-case
// matching, as Mautic does for SMS and push content.
func Contact(text string, c channels.Contact, o Options) string {
	return Replace(text, Tokens(Find(text), c, o), false)
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// URLEncode encodes s as PHP's urlencode does: every byte except A-Z, a-z,
// 0-9, '-', '_' and '.' becomes %XX (upper-case hex), and a space becomes
// '+'.
func URLEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
	return b.String()
}
