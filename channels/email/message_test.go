package email

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
)

func TestSecretHash(t *testing.T) {
	// Computed independently: HMAC-SHA256 keyed with the secret as text.
	for _, email := range []string{"john@doe.email", "Ann+tag@Example.COM", ""} {
		m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
		m.Write([]byte(email))
		want := hex.EncodeToString(m.Sum(nil))
		require.Equal(t, want, SecretHash(email, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	}
	// A fixed vector (RFC 4231 test case 2), so the key is not hex-decoded.
	require.Equal(t, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		SecretHash("what do ya want for nothing?", "Jefe"))
}

func TestBuildURLs(t *testing.T) {
	const secret = "abc123"
	tests := []struct {
		name, base, hash, email string
		want                    trackingURLs
	}{
		{
			name: "plain", base: "https://m.example.com", hash: "65f2b8a1c3d4e9876543210", email: "john@doe.email",
			want: trackingURLs{
				Unsubscribe:   "https://m.example.com/email/unsubscribe/65f2b8a1c3d4e9876543210/john@doe.email/" + SecretHash("john@doe.email", secret),
				DNC:           "https://m.example.com/email/dnc/65f2b8a1c3d4e9876543210/john@doe.email/" + SecretHash("john@doe.email", secret),
				Webview:       "https://m.example.com/email/view/65f2b8a1c3d4e9876543210",
				TrackingPixel: "https://m.example.com/email/65f2b8a1c3d4e9876543210.gif",
			},
		},
		{
			name: "path prefix and special characters", base: "http://h:8080/mautic", hash: "h1", email: "o'neil+x/y z@doe.email",
			want: trackingURLs{
				Unsubscribe:   "http://h:8080/mautic/email/unsubscribe/h1/o%27neil+x%2Fy%20z@doe.email/" + SecretHash("o'neil+x/y z@doe.email", secret),
				DNC:           "http://h:8080/mautic/email/dnc/h1/o%27neil+x%2Fy%20z@doe.email/" + SecretHash("o'neil+x/y z@doe.email", secret),
				Webview:       "http://h:8080/mautic/email/view/h1",
				TrackingPixel: "http://h:8080/mautic/email/h1.gif",
			},
		},
		{name: "no site", base: "", hash: "h1", email: "a@b.c", want: trackingURLs{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, buildURLs(tc.base, secret, tc.hash, tc.email))
		})
	}
}

func TestBuildTokens(t *testing.T) {
	s, _ := newSender(t, Config{
		URL:             "smtp://127.0.0.1:1",
		SiteURL:         "https://m.example.com/index.php",
		SecretKey:       testSecret,
		UnsubscribeText: "Bye {contactfield=firstname}: <a href=\"|URL|\">here</a>",
		SignatureText:   "Cheers,\n|FROM_NAME|",
	})
	msg := testMessage()
	b, err := s.build(msg)
	require.NoError(t, err)
	unsub := "https://m.example.com/email/unsubscribe/" + testHash + "/john@doe.email/" + expectedHMAC("john@doe.email")
	want := map[string]string{
		"{contactfield=firstname}":       "John",
		"{contactfield=firstname|there}": "John",
		"{contactfield=company}":         "Mautic",
		"{contactfield=companyzip}":      "77008",
		"{contactfield=country|USA}":     "USA",
		"{contactfield=lastname}":        "Doe",
		"%7Bcontactfield=email|true%7D":  "john%40doe.email",
		"{unsubscribe_url}":              unsub,
		"{unsubscribe_text}":             `Bye John: <a href="` + unsub + `">here</a>`,
		"{dnc_url}":                      "https://m.example.com/email/dnc/" + testHash + "/john@doe.email/" + expectedHMAC("john@doe.email"),
		"{webview_url}":                  "https://m.example.com/email/view/" + testHash,
		"{webview_text}":                 "<a href='https://m.example.com/email/view/" + testHash + "'>Having trouble reading this email? Click here.</a>",
		"{signature}":                    "Cheers,<br />\nNews Team",
		"{subject}":                      "Hello John from Mautic",
		"{tracking_pixel}":               "https://m.example.com/email/" + testHash + ".gif",
	}
	require.Equal(t, want, b.tokens)
	require.Equal(t, "news@example.com", b.from)
	require.Equal(t, "john@doe.email", b.rcpt)
	require.Equal(t, []string{"archive@example.com"}, b.bcc)
	require.Equal(t, "<dispatch-42-email@m.example.com>", b.messageID)

	p := parseMessage(t, mimeOf(t, b))
	require.Contains(t, strings.ReplaceAll(p.parts["text/html"], "\r\n", "\n"), "Cheers,<br />\nNews Team")

	t.Run("no tracking hash", func(t *testing.T) {
		m := testMessage()
		m.TrackingHash = ""
		_, err := s.build(m)
		require.ErrorIs(t, err, channels.ErrPermanent)
	})
	t.Run("no content", func(t *testing.T) {
		m := testMessage()
		m.Email = nil
		_, err := s.build(m)
		require.ErrorIs(t, err, channels.ErrPermanent)
		m = testMessage()
		m.Email.HTML, m.Email.Text = "", ""
		_, err = s.build(m)
		require.ErrorIs(t, err, channels.ErrPermanent)
	})
	t.Run("bad from address", func(t *testing.T) {
		m := testMessage()
		m.Email.FromAddress = "not an address"
		_, err := s.build(m)
		require.Equal(t, channels.KindPermanent, channels.KindOf(err))
	})
	t.Run("recipient from contact field", func(t *testing.T) {
		m := testMessage()
		m.To = ""
		b, err := s.build(m)
		require.NoError(t, err)
		require.Equal(t, "john@doe.email", b.rcpt)
	})
	t.Run("no name without first and last name", func(t *testing.T) {
		m := testMessage()
		m.Contact.Fields = map[string]*string{"firstname": str(" "), "lastname": nil}
		b, err := s.build(m)
		require.NoError(t, err)
		require.Equal(t, "<john@doe.email>", parseMessage(t, mimeOf(t, b)).header.Get("To"))
	})
	t.Run("text part re-stripped when tokens changed it", func(t *testing.T) {
		m := testMessage()
		m.Email.Text = "Bye: {unsubscribe_text}"
		b, err := s.build(m)
		require.NoError(t, err)
		require.Equal(t, "Bye: Bye John: here", strings.TrimRight(parseMessage(t, mimeOf(t, b)).parts["text/plain"], "\r\n"))
	})
	t.Run("tracking pixel disabled", func(t *testing.T) {
		s2, _ := newSender(t, Config{URL: "smtp://127.0.0.1:1", DisableTrackingPixel: true})
		b, err := s2.build(testMessage())
		require.NoError(t, err)
		require.NotContains(t, parseMessage(t, mimeOf(t, b)).parts["text/html"], `<img height="1"`)
	})
}

func TestMessageID(t *testing.T) {
	s, _ := newSender(t, Config{URL: "smtp://127.0.0.1:1", SiteURL: "https://m.example.com:8443/x", SecretKey: "k"})
	noSite, _ := newSender(t, Config{URL: "smtp://127.0.0.1:1"})
	msg := func(key, hash string) channels.Message { return channels.Message{Key: key, TrackingHash: hash} }
	require.Equal(t, "<dispatch-1-email@m.example.com>", s.messageID(msg("dispatch-1-email", ""), "a@b.c"))
	require.Equal(t, "<dispatch-1-email@b.c>", noSite.messageID(msg("dispatch-1-email", ""), "a@b.c"))
	require.Equal(t, "<hash1@m.example.com>", s.messageID(msg("", "hash1"), "a@b.c"))

	// Sanitized keys stay distinct and deterministic.
	a := s.messageID(msg("q:1/email", ""), "a@b.c")
	b := s.messageID(msg("q-1-email", ""), "a@b.c")
	c := s.messageID(msg("q/1:email", ""), "a@b.c")
	require.NotEqual(t, a, b)
	require.NotEqual(t, a, c)
	require.Equal(t, a, s.messageID(msg("q:1/email", ""), "a@b.c"))
	require.Regexp(t, `^<q-1-email\.[0-9a-f]{12}@m\.example\.com>$`, a)
	long := s.messageID(msg(strings.Repeat("k", 200), ""), "a@b.c")
	require.Less(t, len(long), 120)

	// Without key nor hash the id is random but well formed.
	r1, r2 := s.messageID(msg("", ""), "a@b.c"), s.messageID(msg("", ""), "a@b.c")
	require.NotEqual(t, r1, r2)
	require.Regexp(t, `^<[0-9a-f]{32}@m\.example\.com>$`, r1)
}

func TestHTMLHelpers(t *testing.T) {
	px := trackingImg
	require.Equal(t, "<html><body>x"+px+"</body></html>", insertPixel("<html><body>x</body></html>"))
	require.Equal(t, "<p>x</p>"+px, insertPixel("<p>x</p>"))
	require.Equal(t, "a</body>b"+px+"</body>", insertPixel("a</body>b</body>"))
	require.Equal(t, "<BODY>x</BODY>"+px, insertPixel("<BODY>x</BODY>"), "Mautic matches </body> case-sensitively")

	pre := insertPreheader(`<html><BODY class="x">hi</BODY></html>`, "Sneak peek")
	require.True(t, strings.HasPrefix(pre, `<html><BODY class="x"><div class="preheader"`), pre)
	require.Contains(t, pre, ">Sneak peek</div>hi")
	require.True(t, strings.HasPrefix(insertPreheader("<p>hi</p>", "P"), `<div class="preheader"`))
	require.True(t, strings.HasPrefix(insertPreheader("<bodyguard><body>", "P"), `<bodyguard><body><div`))

	require.Equal(t, "a<br />\nb<br />\r\nc<br />\rd", nl2br("a\nb\r\nc\rd"))
	require.Equal(t, "a<br />\n<br />\nb", nl2br("a\n\nb"))

	tests := []struct{ in, want string }{
		{`Hi <a href="x>y">John</a>!`, "Hi John!"},
		{"a < b and c > d", "a < b and c > d"},
		{"x<!-- hidden <b> -->y", "xy"},
		{"<p>one</p>\n<br/>two", "one\ntwo"},
		{"unterminated <b", "unterminated "},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, stripTags(tc.in), tc.in)
	}
}

func TestCustomHeaders(t *testing.T) {
	var skipped []string
	got := customHeaders(map[string]string{
		"x-tag":        "a",
		"X-Tag":        "b",
		"Reply-To":     "x@y.z",
		"Bcc":          "x@y.z",
		"Content-Type": "text/plain",
		"X-Multi":      "a\nb",
		"X:Colon":      "v",
		"X-Ok":         "{contactfield=firstname}",
		"":             "v",
	}, &skipped)
	require.Len(t, got, 2)
	require.Equal(t, "X-Ok", got[0][0])
	require.Equal(t, "X-Tag", got[1][0])
	require.Len(t, skipped, 7)
	for _, s := range skipped {
		require.NotContains(t, s, "x@y.z")
	}
}

func TestMaskAddress(t *testing.T) {
	require.Equal(t, "550 <<recipient>>: unknown, <recipient>", maskAddress("550 <John@Doe.email>: unknown, john@doe.email", "john@doe.email"))
	require.Equal(t, "no address", maskAddress("no address", "john@doe.email"))
}

func TestEnhancedCodes(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		gone bool
	}{
		{550, "5.1.1 no such user", true},
		{550, "5.1.10 null MX", true},
		{553, "5.1.3 bad syntax", true},
		{550, "5.2.1 mailbox disabled", true},
		{552, "5.2.2 mailbox full", false},
		{550, "5.7.1 relay denied", false},
		{550, "5.1.8 bad sender domain", false},
		{550, "5.0.0 mailbox unavailable", true},
		{550, "mailbox unavailable", true},
		{554, "transaction failed", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.gone, mailboxGone(tc.code, tc.msg, true), tc.msg)
	}
	require.False(t, mailboxGone(550, "no such user", false), "after DATA only enhanced codes count")
}
