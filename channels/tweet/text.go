package tweet

import (
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaxLength is X's limit on a post's weighted length.
const MaxLength = 280

// handleRe is a valid X handle (without the @).
var handleRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,15}$`)

// NormalizeHandle turns the contact's twitter field as stored in Mautic
// ("@ada", "ada", "https://x.com/ada") into a handle without the @.
func NormalizeHandle(raw string) (string, error) {
	h := strings.TrimSpace(raw)
	for _, p := range []string{"https://", "http://", "www.", "mobile.", "twitter.com/", "x.com/"} {
		if len(h) >= len(p) && strings.EqualFold(h[:len(p)], p) {
			h = h[len(p):]
		}
	}
	h = strings.TrimSuffix(h, "/")
	h = strings.TrimPrefix(h, "@")
	if h == "" {
		return "", errors.New("no twitter handle")
	}
	if !handleRe.MatchString(h) {
		return "", errors.New("not a valid twitter handle")
	}
	return h, nil
}

// Compose returns text addressed to handle: "@handle " is put in front
// unless text already mentions @handle (case-insensitively).
func Compose(text, handle string) string {
	if mentions(text, handle) {
		return text
	}
	return "@" + handle + " " + text
}

func mentions(text, handle string) bool {
	lower, want := strings.ToLower(text), "@"+strings.ToLower(handle)
	for i := 0; ; {
		j := strings.Index(lower[i:], want)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(want)
		before := start == 0 || !isHandleByte(lower[start-1])
		after := end == len(lower) || !isHandleByte(lower[end])
		if before && after {
			return true
		}
		i = end
	}
}

func isHandleByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '@'
}

var urlRe = regexp.MustCompile(`https?://[^\s]+`)

// Length is X's weighted length of text (twitter-text v3, simplified): a
// URL counts 23, a code point in the Latin and general-punctuation ranges
// counts 1, any other (CJK, emoji) counts 2. Emoji sequences joined with
// ZWJ count per code point, so the result can only be too high, never too
// low.
func Length(text string) int {
	n := 0
	rest := urlRe.ReplaceAllStringFunc(text, func(string) string {
		n += 23
		return ""
	})
	for _, r := range rest {
		switch {
		case r == utf8.RuneError:
			n += 2
		case r <= 4351, r >= 8192 && r <= 8205, r >= 8208 && r <= 8223, r >= 8242 && r <= 8247:
			n++
		default:
			n += 2
		}
	}
	return n
}
