package email

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"mime"
	"net/mail"
	"time"
)

// composition is a rendered email as the MIME writer takes it.
type composition struct {
	date      time.Time
	messageID string // without angle brackets
	subject   string
	from      *mail.Address
	to        *mail.Address
	replyTo   []*mail.Address
	// headers are written in this order, before List-Unsubscribe: X-EMAIL-ID
	// and the email's own headers, names canonical, values without line
	// breaks (validHeaderValue).
	headers     [][2]string
	unsubscribe string // the List-Unsubscribe URL ("" for none)
	text, html  string // at least one
}

// maxLine is where header lines are folded and quoted-printable lines
// broken (RFC 2045's 76 characters).
const maxLine = 76

// writeMIME writes c into buf as an RFC 5322 message with CRLF line ends:
// the headers (non-ASCII text as RFC 2047 encoded words, long lines folded
// at spaces), then a text/plain or text/html part, or both as
// multipart/alternative, quoted-printable in UTF-8. It is what go-mail's
// Msg wrote for the sender (TestWriteMIMEAgreesWithGoMail), without its
// intermediate copies of the bodies, which were most of an email's memory.
func writeMIME(buf *bytes.Buffer, c *composition) {
	writeHeader(buf, "Date", c.date.Format(time.RFC1123Z))
	writeHeader(buf, "MIME-Version", "1.0")
	writeHeader(buf, "Message-ID", "<"+c.messageID+">")
	writeHeader(buf, "Subject", encodeText(c.subject))
	for _, h := range c.headers {
		writeHeader(buf, h[0], encodeText(h[1]))
	}
	if c.unsubscribe != "" {
		writeHeader(buf, "List-Unsubscribe", "<"+c.unsubscribe+">")
		writeHeader(buf, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	writeHeader(buf, "From", c.from.String())
	writeHeader(buf, "To", c.to.String())
	if len(c.replyTo) > 0 {
		list := make([]byte, 0, 64*len(c.replyTo))
		for i, a := range c.replyTo {
			if i > 0 {
				list = append(list, ", "...)
			}
			list = append(list, a.String()...)
		}
		writeHeader(buf, "Reply-To", string(list))
	}
	switch {
	case c.text != "" && c.html != "":
		boundary := newBoundary()
		writeHeader(buf, "Content-Type", "multipart/alternative; boundary="+boundary)
		buf.WriteString("\r\n")
		for _, p := range [...]struct{ typ, body string }{{"text/plain", c.text}, {"text/html", c.html}} {
			buf.WriteString("--" + boundary + "\r\n")
			writePartHeader(buf, p.typ)
			buf.WriteString("\r\n")
			buf.Write(appendQP(buf.AvailableBuffer(), p.body))
			buf.WriteString("\r\n") // the delimiter's own line break
		}
		buf.WriteString("--" + boundary + "--\r\n")
	case c.html != "":
		writePartHeader(buf, "text/html")
		buf.WriteString("\r\n")
		buf.Write(appendQP(buf.AvailableBuffer(), c.html))
	default:
		writePartHeader(buf, "text/plain")
		buf.WriteString("\r\n")
		buf.Write(appendQP(buf.AvailableBuffer(), c.text))
	}
	// A single part ends as its body does; DATA adds the last line break
	// when it is missing (appendData).
}

func writePartHeader(buf *bytes.Buffer, mediaType string) {
	buf.WriteString("Content-Transfer-Encoding: quoted-printable\r\nContent-Type: ")
	buf.WriteString(mediaType)
	buf.WriteString("; charset=UTF-8\r\n")
}

// newBoundary returns a multipart boundary: 32 random hex digits, which
// cannot occur in a quoted-printable body by chance.
func newBoundary() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// encodeText returns an unstructured header value as it goes on the wire:
// as is when it is printable ASCII, else as RFC 2047 Q-encoded words.
func encodeText(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c > '~' {
			return mime.QEncoding.Encode("UTF-8", v)
		}
	}
	return v
}

// writeHeader writes "name: value" and CRLF, folding the line before a
// space where it would pass maxLine (a word longer than that stays whole:
// lines stay far below RFC 5322's 998 since values are at most 900).
func writeHeader(buf *bytes.Buffer, name, value string) {
	buf.WriteString(name)
	buf.WriteByte(':')
	n := len(name) + 1
	for first := true; ; first = false {
		word := value
		rest, more := "", false
		if i := indexSpace(value); i >= 0 {
			word, rest, more = value[:i], value[i+1:], true
		}
		if !first && n+1+len(word) > maxLine {
			buf.WriteString("\r\n")
			n = 0
		}
		buf.WriteByte(' ')
		buf.WriteString(word)
		n += 1 + len(word)
		if !more {
			break
		}
		value = rest
	}
	buf.WriteString("\r\n")
}

func indexSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return i
		}
	}
	return -1
}

// appendQP appends s quoted-printable encoded (RFC 2045 6.7) to dst, as
// text: a line break ("\r\n", "\n" or a lone "\r", as mime/quotedprintable
// reads them) becomes CRLF.
// Encoded lines are at most maxLine characters, a soft line break ("=")
// included; "=", control characters, bytes above 126 and a space or tab at
// the end of a line are encoded as =XX. It writes straight into the
// message buffer, where mime/quotedprintable's Writer needs a []byte copy
// of the body and buffers its own.
func appendQP(dst []byte, s string) []byte {
	const digits = "0123456789ABCDEF"
	line := 0 // characters on the current encoded line
	room := func(n int) {
		if line+n > maxLine-1 { // keep one for a soft line break
			dst = append(dst, "=\r\n"...)
			line = 0
		}
	}
	// endLine encodes a literal space or tab that would end a line.
	endLine := func() {
		if line == 0 {
			return
		}
		last := dst[len(dst)-1]
		if last != ' ' && last != '\t' {
			return
		}
		dst = dst[:len(dst)-1]
		line--
		room(3)
		dst = append(dst, '=', digits[last>>4], digits[last&15])
		line += 3
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			if c == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			endLine()
			dst = append(dst, '\r', '\n')
			line = 0
		case (c >= '!' && c <= '~' && c != '=') || c == ' ' || c == '\t':
			room(1)
			dst = append(dst, c)
			line++
		default:
			room(3)
			dst = append(dst, '=', digits[c>>4], digits[c&15])
			line += 3
		}
	}
	endLine()
	return dst
}
