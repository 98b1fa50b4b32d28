package email

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gomail "github.com/wneessen/go-mail"
)

// mimeOf returns the message of a built email, checking that its DATA
// content reads back to it.
func mimeOf(t *testing.T, b *built) []byte {
	t.Helper()
	out, err := io.ReadAll(textproto.NewReader(bufio.NewReader(bytes.NewReader(b.dotted()))).DotReader())
	require.NoError(t, err)
	require.Equal(t, strings.ReplaceAll(string(b.raw), "\r\n", "\n"), string(out))
	return b.raw
}

// randomText mixes what a rendered email holds: ASCII words, accents and
// other scripts, "=", dots and spaces at line ends, tabs, CRLF, LF, a lone
// CR (with loneCR), and lines longer than 76 characters.
func randomText(r *rand.Rand, n int, loneCR bool) string {
	pieces := []string{"hello", "world", " ", " ", "  ", "\t", "=", "==", ".", "..", "\n", "\r\n", " \n", "\t\r\n",
		"é", "ü", "日本語", "😀", "<a href=\"https://x.test/?a=1&b=2\">", strings.Repeat("x", 90), "=\n", "From ", "\x00", "\x7f"}
	if loneCR {
		pieces = append(pieces, "\r")
	}
	var sb strings.Builder
	for range n {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	return sb.String()
}

// TestAppendQP: the encoding decodes to the text (every line break, a
// lone CR too, as CRLF),
// its lines are at most 76 characters, only printable ASCII, and none ends
// in a space or tab.
func TestAppendQP(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		text := randomText(r, r.IntN(60), true)
		enc := appendQP(nil, text)
		for _, line := range strings.Split(string(enc), "\r\n") {
			require.LessOrEqual(t, len(line), maxLine, "case %d: %q", i, line)
			for j := 0; j < len(line); j++ {
				require.True(t, line[j] >= ' ' && line[j] <= '~' || line[j] == '\t', "case %d: byte %q in %q", i, line[j], line)
			}
			if line != "" {
				last := line[len(line)-1]
				require.False(t, last == ' ' || last == '\t', "case %d: line ends in white space: %q", i, line)
			}
		}
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
		require.NoError(t, err, "case %d: %q", i, enc)
		want := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n"), "\n", "\r\n")
		require.Equal(t, want, string(dec), "case %d: %q", i, enc)
	}
}

// TestWriteHeaderFolds: long values are folded before a space, unfold to
// the value, and short ones stay on one line.
func TestWriteHeaderFolds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		var words []string
		for range r.IntN(30) + 1 {
			words = append(words, strings.Repeat("w", r.IntN(20)+1))
		}
		value := strings.Join(words, " ")
		var buf bytes.Buffer
		writeHeader(&buf, "X-Test", value)
		out := buf.String()
		require.True(t, strings.HasSuffix(out, "\r\n"))
		for _, line := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			require.LessOrEqual(t, len(line), maxLine, "case %d", i)
		}
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(out + "\r\n"))).ReadMIMEHeader()
		require.NoError(t, err)
		require.Equal(t, value, h.Get("X-Test"), "case %d", i)
	}
}

// composeGoMail writes c with go-mail's Msg, as the sender did before
// writeMIME: the reference the MIME writer is checked against.
func composeGoMail(t *testing.T, c *composition) []byte {
	t.Helper()
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.SetAddrHeaderFromMailAddress(gomail.HeaderFrom, c.from)
	m.SetAddrHeaderFromMailAddress(gomail.HeaderTo, c.to)
	if len(c.replyTo) > 0 {
		m.SetAddrHeaderFromMailAddress(gomail.HeaderReplyTo, c.replyTo...)
	}
	m.Subject(c.subject)
	m.SetMessageIDWithValue(c.messageID)
	m.SetDateWithValue(c.date)
	for _, h := range c.headers {
		m.SetGenHeader(gomail.Header(h[0]), h[1])
	}
	if c.unsubscribe != "" {
		m.SetListUnsubscribe(c.unsubscribe)
		m.SetListUnsubscribePost()
	}
	switch {
	case c.html != "" && c.text != "":
		m.SetBodyString(gomail.TypeTextPlain, c.text)
		m.AddAlternativeString(gomail.TypeTextHTML, c.html)
	case c.html != "":
		m.SetBodyString(gomail.TypeTextHTML, c.html)
	default:
		m.SetBodyString(gomail.TypeTextPlain, c.text)
	}
	var buf bytes.Buffer
	_, err := m.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

// TestWriteMIMEAgreesWithGoMail: for random compositions (names and
// subjects with accents, other scripts, quotes and specials; long values;
// text, HTML or both; custom headers) the message writeMIME writes reads
// back, with net/mail, mime and multipart, to the same headers and parts
// as the one go-mail writes. Bodies here have no lone CR: mime/quotedprintable's
// Writer, which go-mail uses, drops the LF of "\r=\n" (it takes it for
// the end of a CRLF); TestAppendQP checks those against the decoder.
func TestWriteMIMEAgreesWithGoMail(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	names := []string{"", "John Doe", "Jöhn Döe", "O'Brien, Pat", `Say "hi"`, "日本 太郎", "a.b (c)", strings.Repeat("Long Name ", 10)}
	words := []string{"Hello", "Héllo", "{x}", "news", "😀", "a=b", "?=", "=?utf-8?q?x?=", "—", "long" + strings.Repeat("o", 80)}
	line := func(n int) string {
		var parts []string
		for range n {
			parts = append(parts, words[r.IntN(len(words))])
		}
		return strings.Join(parts, " ")
	}
	date := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range 400 {
		c := &composition{
			date: date, messageID: "dispatch-" + strings.Repeat("1", r.IntN(5)+1) + "-email@m.example.com",
			subject: line(r.IntN(12) + 1),
			from:    &mail.Address{Name: names[r.IntN(len(names))], Address: "news@example.com"},
			to:      &mail.Address{Name: names[r.IntN(len(names))], Address: "john.doe+x@example.org"},
			headers: [][2]string{{"X-EMAIL-ID", "7"}},
		}
		if r.IntN(2) == 0 {
			c.replyTo = []*mail.Address{{Address: "reply@example.com"}, {Name: names[r.IntN(len(names))], Address: "r2@example.com"}}
		}
		if r.IntN(2) == 0 {
			c.headers = append(c.headers, [2]string{"X-Campaign", line(r.IntN(6) + 1)})
		}
		if r.IntN(2) == 0 {
			c.unsubscribe = "https://m.example.com/email/unsubscribe/65f2b8a1c3d4e/john@doe.email/" + strings.Repeat("c2", 32)
		}
		switch r.IntN(3) {
		case 0:
			c.text = randomText(r, r.IntN(80)+1, false)
		case 1:
			c.html = randomText(r, r.IntN(80)+1, false)
		default:
			c.text, c.html = randomText(r, r.IntN(80)+1, false), randomText(r, r.IntN(80)+1, false)
		}
		var ours bytes.Buffer
		writeMIME(&ours, c)
		for _, l := range strings.Split(ours.String(), "\r\n") {
			require.LessOrEqual(t, len(l), 998, "case %d", i)
			for j := 0; j < len(l); j++ {
				require.True(t, l[j] >= ' ' && l[j] <= '~' || l[j] == '\t', "case %d: 7-bit text only, got %q in %q", i, l[j], l)
			}
		}
		got, want := parseMessage(t, ours.Bytes()), parseMessage(t, composeGoMail(t, c))
		dec := new(mime.WordDecoder)
		for _, h := range []string{"Subject", "X-Campaign", "X-Email-Id", "Message-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Mime-Version"} {
			g, err := dec.DecodeHeader(got.header.Get(h))
			require.NoError(t, err)
			w, err := dec.DecodeHeader(want.header.Get(h))
			require.NoError(t, err)
			require.Equal(t, w, g, "case %d: %s", i, h)
		}
		if !strings.Contains(c.subject, "=?") { // an ASCII look-alike of an encoded word is sent as is, as go-mail did
			require.Equal(t, c.subject, decoded(t, got.header.Get("Subject")), "case %d", i)
		}
		for _, h := range []string{"From", "To", "Reply-To"} {
			g, _ := got.header.AddressList(h)
			w, _ := want.header.AddressList(h)
			require.Equal(t, w, g, "case %d: %s", i, h)
		}
		gd, err := got.header.Date()
		require.NoError(t, err)
		require.True(t, gd.Equal(date), "case %d", i)
		require.Equal(t, want.parts, got.parts, "case %d", i)
	}
}

func decoded(t *testing.T, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	require.NoError(t, err)
	return s
}

// BenchmarkCompose writes a 10 kB HTML email with its text part, with
// writeMIME and, for comparison, with go-mail's Msg (what build used
// before).
func BenchmarkCompose(b *testing.B) {
	html := strings.Repeat(`<p style="margin:0 0 12px">Hello John, here is this week's news from Mautic: `+
		`<a href="https://example.com/news?id=42&utm_source=mautic">read more</a>.</p>`+"\n", 60)
	c := &composition{date: time.Now(), messageID: "dispatch-42-email@m.example.com", subject: "This week's news, John",
		from: &mail.Address{Name: "News Team", Address: "news@example.com"}, to: &mail.Address{Name: "John Doe", Address: "john@doe.email"},
		headers: [][2]string{{"X-EMAIL-ID", "7"}}, unsubscribe: "https://m.example.com/email/unsubscribe/65f2b8a1c3d4e/john@doe.email/abc",
		text: stripTags(html), html: html}
	b.Run("writeMIME", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			writeMIME(&buf, c)
		}
	})
	b.Run("go-mail", func(b *testing.B) {
		b.ReportAllocs()
		t := &testing.T{}
		for b.Loop() {
			composeGoMail(t, c)
		}
	})
}
