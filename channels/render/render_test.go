package render_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

func str(s string) *string { return &s }

// fields builds a field map; a value "\x00NULL" stands for SQL NULL.
func fields(kv ...string) map[string]*string {
	m := map[string]*string{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00NULL" {
			m[kv[i]] = nil
			continue
		}
		m[kv[i]] = str(kv[i+1])
	}
	return m
}

const null = "\x00NULL"

func TestFind(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"none", "hello {contact=x} {Contactfield=x}", nil},
		{"one", "Hi {contactfield=firstname}!", []string{"{contactfield=firstname}"}},
		{"default", "Hi {contactfield=firstname|friend}", []string{"{contactfield=firstname|friend}"}},
		{
			"distinct in order",
			"{contactfield=b} {contactfield=a} {contactfield=b}",
			[]string{"{contactfield=b}", "{contactfield=a}"},
		},
		{
			"url encoded braces",
			`<a href="https://x.test/?e=%7Bcontactfield=email|true%7D">`,
			[]string{"%7Bcontactfield=email|true%7D"},
		},
		{"mixed braces", "{contactfield=a%7D and %7Bcontactfield=b}", []string{"{contactfield=a%7D", "%7Bcontactfield=b}"}},
		{"lower-case encoding does not match", "%7bcontactfield=a%7d", nil},
		{"shortest match", "{contactfield=a}}b}", []string{"{contactfield=a}"}},
		{"nested opening is part of the alias", "{contactfield=a{contactfield=b}", []string{"{contactfield=a{contactfield=b}"}},
		{"newline breaks a token", "{contactfield=a\n} {contactfield=b}", []string{"{contactfield=b}"}},
		{"unterminated", "{contactfield=a", nil},
		{"empty alias", "{contactfield=}", []string{"{contactfield=}"}},
		{"adjacent", "{contactfield=a}{contactfield=b}", []string{"{contactfield=a}", "{contactfield=b}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, render.Find(tc.text))
		})
	}
}

func TestTokenHelperCases(t *testing.T) {
	// mautic-reference.md 10.11, LeadBundle TokenHelperTest.
	company := fields("companyzip", "77008", "companyname", "Mautic")
	tests := []struct {
		name    string
		text    string
		fields  map[string]*string
		company map[string]*string
		opts    render.Options
		want    string
	}{
		{"country", "{contactfield=country}", fields("country", "USA"), nil, render.Options{}, "USA"},
		{"company field from primary company", "{contactfield=companyzip}", fields("country", "USA"), company, render.Options{Company: true}, "77008"},
		{"company field without companies", "{contactfield=companyzip}", fields("country", "USA"), nil, render.Options{Company: true}, ""},
		{"company data not allowed", "{contactfield=companyzip}", fields("country", "USA"), company, render.Options{}, ""},
		{"default for empty value", "{contactfield=country|USA}", fields("country", ""), nil, render.Options{}, "USA"},
		{"urlencode", "{contactfield=country|true}", fields("country", "Somewhere&Else"), nil, render.Options{}, "Somewhere%26Else"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := channels.Contact{ID: 1, Fields: tc.fields, Company: tc.company}
			require.Equal(t, tc.want, render.Contact(tc.text, c, tc.opts))
		})
	}
}

func TestValue(t *testing.T) {
	c := channels.Contact{
		ID: 7,
		Fields: fields(
			"email", "john@doe.email",
			"company", "Mautic",
			"ipAddress", "127.0.0.1,127.0.0.2",
			"firstname", "John Paul",
			"empty", "",
			"nullfield", null,
			"zip", null,
			"city", "",
			"born", "1990-07-04",
			"last_active", "2024-03-05 14:07:09",
			"rfc", "2024-03-05T16:07:09+02:00",
			"baddate", "not a date",
			"bool", "1",
			"tilde", "a~b c*d/é",
		),
		Company: fields("zip", "77008", "city", "Houston", "companyname", null),
	}
	withCompany := render.Options{Company: true}
	tests := []struct {
		name  string
		alias string
		def   string
		opts  render.Options
		want  string
	}{
		// mautic-reference.md 10.10 data shapes.
		{"email", "email", "", render.Options{}, "john@doe.email"},
		{"email urlencoded", "email", "true", render.Options{}, "john%40doe.email"},
		{"company contact field", "company", "", withCompany, "Mautic"},
		{"ip addresses", "ipAddress", "", render.Options{}, "127.0.0.1,127.0.0.2"},

		{"missing no default", "nope", "", render.Options{}, ""},
		{"missing with default", "nope", "there", render.Options{}, "there"},
		{"empty string uses default", "empty", "x", render.Options{}, "x"},
		{"NULL uses default", "nullfield", "x", render.Options{}, "x"},
		{"NULL falls back to company", "zip", "", withCompany, "77008"},
		{"NULL no company allowed", "zip", "dflt", render.Options{}, "dflt"},
		{"empty string does not fall back to company", "city", "", withCompany, ""},
		{"empty string with default does not use company", "city", "Paris", withCompany, "Paris"},
		{"NULL company field gives default", "companyname", "Acme", withCompany, "Acme"},
		{"boolean as stored", "bool", "", render.Options{}, "1"},

		{"urlencode space as plus", "firstname", "true", render.Options{}, "John+Paul"},
		{"urlencode like php", "tilde", "true", render.Options{}, "a%7Eb+c%2Ad%2F%C3%A9"},
		{"urlencode empty stays empty", "empty", "true", render.Options{}, ""},
		{"urlencode missing stays empty", "nope", "true", render.Options{}, ""},

		{"date", "born", "date", render.Options{}, "July 4, 1990"},
		{"datetime", "last_active", "datetime", render.Options{}, "March 5, 2024 2:07 pm"},
		{"time", "last_active", "time", render.Options{}, "2:07 pm"},
		{"date of datetime", "last_active", "date", render.Options{}, "March 5, 2024"},
		{"rfc3339 converted to UTC", "rfc", "datetime", render.Options{}, "March 5, 2024 2:07 pm"},
		{
			"custom formats", "last_active", "datetime",
			render.Options{DateFormat: "d/m/Y", TimeFormat: "H:i"},
			"05/03/2024 14:07",
		},
		{"unparseable date kept", "baddate", "date", render.Options{}, "not a date"},
		{"empty date stays empty", "empty", "date", render.Options{}, ""},
		{"missing datetime stays empty", "nope", "datetime", render.Options{}, ""},

		{"company date", "zip", "true", withCompany, "77008"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, render.Value(tc.alias, tc.def, c, tc.opts))
		})
	}
}

func TestTokens(t *testing.T) {
	c := channels.Contact{Fields: fields("firstname", "Ann", "country", "")}
	texts := []string{
		"{contactfield=firstname}",
		"%7Bcontactfield=firstname%7D",
		"{contactfield=country|France|ignored}",
		"{contactfield=country|}",
		"not a token",
		"{contactfield=a}}",
	}
	got := render.Tokens(texts, c, render.Options{})
	require.Equal(t, map[string]string{
		"{contactfield=firstname}":              "Ann",
		"%7Bcontactfield=firstname%7D":          "Ann",
		"{contactfield=country|France|ignored}": "France",
		"{contactfield=country|}":               "",
	}, got)
}

func TestContact(t *testing.T) {
	c := channels.Contact{Fields: fields(
		"firstname", "Ann",
		"lastname", "Lee",
		"email", "ann+x@example.com",
		"html", "<b>&amp;</b>",
		"loop", "{contactfield=firstname}",
	)}
	tests := []struct {
		name string
		text string
		want string
	}{
		{"multiple tokens", "Dear {contactfield=firstname} {contactfield=lastname|X},", "Dear Ann Lee,"},
		{"repeated", "{contactfield=firstname}/{contactfield=firstname}", "Ann/Ann"},
		{"encoded braces in link", `<a href="https://x.test/?e=%7Bcontactfield=email|true%7D">`, `<a href="https://x.test/?e=ann%2Bx%40example.com">`},
		{"no html escaping", "{contactfield=html}", "<b>&amp;</b>"},
		{"values are not rescanned", "{contactfield=loop}", "{contactfield=firstname}"},
		{"case sensitive for sms", "{CONTACTFIELD=firstname}", "{CONTACTFIELD=firstname}"},
		{"no tokens", "plain text", "plain text"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, render.Contact(tc.text, c, render.Options{}))
		})
	}
}

func TestReplace(t *testing.T) {
	tokens := map[string]string{
		"{contactfield=email}": "a@b.c",
		"{contactfield=Email}": "EXACT",
		"{subject}":            "Hello",
		"{sub}":                "short",
		"{unsubscribe_url}":    "https://m.test/email/unsubscribe/h",
	}
	tests := []struct {
		name string
		text string
		ci   bool
		want string
	}{
		{"exact", "{contactfield=email} {subject}", false, "a@b.c Hello"},
		{"exact leaves other case", "{CONTACTFIELD=EMAIL}", false, "{CONTACTFIELD=EMAIL}"},
		{"case insensitive", "{SUBJECT} {Unsubscribe_Url}", true, "Hello https://m.test/email/unsubscribe/h"},
		{"ambiguous fold picks the smallest key", "{CONTACTFIELD=EMAIL}", true, "EXACT"},
		{"exact case preferred", "{contactfield=Email}|{contactfield=email}", true, "EXACT|a@b.c"},
		{"longest key wins", "{subject}{sub}", true, "Helloshort"},
		{"adjacent and at ends", "{sub}{sub}", false, "shortshort"},
		{"non ascii untouched", "é{Unsubscribe_URL}ß", true, "éhttps://m.test/email/unsubscribe/hß"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, render.Replace(tc.text, tokens, tc.ci))
		})
	}
	require.Equal(t, "x", render.Replace("x", nil, true))
	require.Equal(t, "x", render.Replace("x", map[string]string{"": "y"}, true))
}

func TestURLEncode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"AZaz09-_.", "AZaz09-_."},
		{"a b", "a+b"},
		{"~!*'()", "%7E%21%2A%27%28%29"},
		{"Somewhere&Else", "Somewhere%26Else"},
		{"ü", "%C3%BC"},
		{"\x00\xff", "%00%FF"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			require.Equal(t, tc.want, render.URLEncode(tc.in))
		})
	}
}

func TestPHPDate(t *testing.T) {
	// Sunday 3 January 2021 belongs to ISO week 53 of 2020.
	sun := time.Date(2021, 1, 3, 0, 5, 6, 123456789, time.UTC)
	leap := time.Date(2024, 2, 29, 13, 0, 0, 0, time.UTC)
	plus2 := time.Date(2024, 2, 29, 13, 0, 0, 0, time.FixedZone("", 2*3600+30*60))
	tests := []struct {
		name   string
		t      time.Time
		format string
		want   string
	}{
		{"mautic date default", leap, render.DefaultDateFormat, "February 29, 2024"},
		{"mautic time default", leap, render.DefaultTimeFormat, "1:00 pm"},
		{"day letters", sun, "d D j l N S w z", "03 Sun 3 Sunday 7 rd 0 2"},
		{"iso week and year", sun, "W o", "53 2020"},
		{"month letters", sun, "F m M n t", "January 01 Jan 1 31"},
		{"leap", leap, "L t", "1 29"},
		{"not leap", sun, "L", "0"},
		{"years", sun, "Y y", "2021 21"},
		{"midnight", sun, "a A g G h H i s", "am AM 12 0 12 00 05 06"},
		{"afternoon", leap, "a A g G h H", "pm PM 1 13 01 13"},
		{"fractions", sun, "u v", "123456 123"},
		{"swatch", sun, "B", "045"},
		{"unix", sun, "U", "1609632306"},
		{"utc zone", sun, "e T P O p Z I", "UTC UTC +00:00 +0000 Z 0 0"},
		{"fixed zone", plus2, "T P O p Z", "+02:30 +02:30 +0230 +02:30 9000"},
		{"iso 8601", sun, "c", "2021-01-03T00:05:06+00:00"},
		{"rfc 2822", sun, "r", "Sun, 03 Jan 2021 00:05:06 +0000"},
		{"escapes", sun, `\Y\e\s: Y \\ \`, `Yes: 2021 \ `},
		{"literal bytes", sun, "j. é-#", "3. é-#"},
		{"ordinals", time.Date(2021, 1, 11, 0, 0, 0, 0, time.UTC), "jS", "11th"},
		{"ordinal 22", time.Date(2021, 1, 22, 0, 0, 0, 0, time.UTC), "jS", "22nd"},
		{"ordinal 31", time.Date(2021, 1, 31, 0, 0, 0, 0, time.UTC), "jS", "31st"},
		{"ordinal 13", time.Date(2021, 1, 13, 0, 0, 0, 0, time.UTC), "jS", "13th"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, render.PHPDate(tc.t, tc.format))
		})
	}
}

func FuzzRender(f *testing.F) {
	seeds := []string{
		"",
		"{contactfield=firstname}",
		"%7Bcontactfield=email|true%7D",
		"{contactfield=born|date}{contactfield=born|datetime}{contactfield=born|time}",
		"{contactfield=a|b|c}",
		"{contactfield=}",
		"{contactfield=a{contactfield=b}}",
		"{contactfield=a\n}",
		"%7Bcontactfield=%7D%7D",
		"{CONTACTFIELD=firstname}",
	}
	for _, s := range seeds {
		f.Add(s, "2024-03-05 14:07:09", `D, d M Y \a\t g:i A S W o e T P`)
	}
	f.Fuzz(func(t *testing.T, text, value, format string) {
		c := channels.Contact{
			Fields: map[string]*string{
				"firstname": &value,
				"born":      &value,
				"a":         &value,
				"":          &value,
				"nullfield": nil,
			},
			Company: map[string]*string{"b": &value},
		}
		o := render.Options{Company: true, DateFormat: format, TimeFormat: format}
		found := render.Find(text)
		for _, tok := range found {
			require.Contains(t, text, tok)
			require.True(t, strings.HasPrefix(tok, "{contactfield=") || strings.HasPrefix(tok, "%7Bcontactfield="))
		}
		toks := render.Tokens(found, c, o)
		require.Len(t, toks, len(found))
		out := render.Replace(text, toks, true)
		if len(found) == 0 {
			require.Equal(t, text, out)
		}
		_ = render.Contact(text, c, o)
		_ = render.PHPDate(time.Now(), format)
		enc := render.URLEncode(value)
		require.True(t, utf8.ValidString(enc))
	})
}

// BenchmarkRenderEmail renders a 10 kB HTML email with five tokens, as the
// email sender does once per send (Find, Tokens, Replace on subject and body).
func BenchmarkRenderEmail(b *testing.B) {
	body := strings.Repeat("<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n", 150)
	body = "<h1>Hi {contactfield=firstname|there},</h1>" + body[:len(body)/2] +
		"<p>Your city: {contactfield=city|unknown}, company {contactfield=companyname}</p>" + body[len(body)/2:] +
		"<a href=\"https://example.test/u?e=%7Bcontactfield=email%7D\">unsubscribe</a> {contactfield=lastname}"
	subject := "News for {contactfield=firstname|you}"
	c := channels.Contact{ID: 1, Fields: fields("firstname", "Ada", "lastname", "Lovelace", "email", "ada@example.test", "city", null),
		Company: fields("companyname", "Analytical Engines")}
	o := render.Options{Company: true}
	b.SetBytes(int64(len(body) + len(subject)))
	b.ReportAllocs()
	for b.Loop() {
		toks := render.Tokens(append(render.Find(subject), render.Find(body)...), c, o)
		s := render.Replace(subject, toks, true)
		h := render.Replace(body, toks, true)
		if len(s) == 0 || !strings.Contains(h, "Ada") {
			b.Fatal("not rendered")
		}
	}
}

// referenceReplace is Replace written the obvious way: at every position,
// the longest key that matches (ASCII case folded when asked), the
// exact-case one among equally long matches.
func referenceReplace(text string, tokens map[string]string, fold bool) string {
	lower := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	var out strings.Builder
	for i := 0; i < len(text); {
		best, exact := "", false
		for k := range tokens {
			if k == "" || len(text)-i < len(k) {
				continue
			}
			seg := text[i : i+len(k)]
			isExact := seg == k
			if !isExact && !(fold && lower(seg) == lower(k)) {
				continue
			}
			switch {
			case len(k) > len(best),
				len(k) == len(best) && isExact && !exact,
				len(k) == len(best) && isExact == exact && k < best:
				best, exact = k, isExact
			}
		}
		if best == "" {
			out.WriteByte(text[i])
			i++
			continue
		}
		out.WriteString(tokens[best])
		i += len(best)
	}
	return out.String()
}

func FuzzReplaceMatchesReference(f *testing.F) {
	f.Add("Hi {contactfield=firstname}, {CONTACTFIELD=FirstName} %7Bcontactfield=email%7D {x}", "{contactfield=firstname}", "%7Bcontactfield=email%7D", "Ada", true)
	f.Add("{a}{A}{ab}{AB}", "{a}", "{ab}", "v{a}", false)
	f.Add("aAaA", "a", "A", "b", true)
	f.Fuzz(func(t *testing.T, text, k1, k2, v string, fold bool) {
		tokens := map[string]string{k1: v, k2: v + "2", strings.ToUpper(k1): "U"}
		require.Equal(t, referenceReplace(text, tokens, fold), render.Replace(text, tokens, fold))
	})
}
