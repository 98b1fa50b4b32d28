package email

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/render"
)

// blankPixel is Mautic's 1x1 transparent GIF (MailHelper::getBlankPixel),
// used as {tracking_pixel} when no tracking URL can be built.
const blankPixel = "data:image/gif;base64,R0lGODlhAQABAAD/ACwAAAAAAQABAAACADs="

// trackingImg is the image Mautic inserts before </body>
// (mailer_append_tracking_pixel).
const trackingImg = `<img height="1" width="1" src="{tracking_pixel}" alt="" />`

// SecretHash returns the signature of Mautic's unsubscribe and DNC URLs:
// the lowercase hex HMAC-SHA256 of the email address, keyed with Mautic's
// secret_key used as text (mautic-reference.md 7.2).
func SecretHash(emailAddress, secretKey string) string {
	m := hmac.New(sha256.New, []byte(secretKey))
	m.Write([]byte(emailAddress))
	return hex.EncodeToString(m.Sum(nil))
}

// pathSegment encodes s as Symfony's UrlGenerator encodes a route parameter:
// rawurlencode, then '@', ':', ';', ',', '=', '+', '!', '*' and '|' are kept
// literal. '/' stays encoded, so the segment always routes.
func pathSegment(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-_.~@:;,=+!*|", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&0x0f])
		}
	}
	return b.String()
}

// trackingURLs are the per-send Mautic URLs of mautic-reference.md 7.2. All are
// empty when the sender has no site URL.
type trackingURLs struct {
	Unsubscribe   string
	DNC           string
	Webview       string
	TrackingPixel string
}

// buildURLs builds the Mautic URLs for one send.
func buildURLs(base, secretKey, idHash, emailAddress string) trackingURLs {
	if base == "" {
		return trackingURLs{}
	}
	id := pathSegment(idHash)
	tail := id + "/" + pathSegment(emailAddress) + "/" + SecretHash(emailAddress, secretKey)
	return trackingURLs{
		Unsubscribe:   base + "/email/unsubscribe/" + tail,
		DNC:           base + "/email/dnc/" + tail,
		Webview:       base + "/email/view/" + id,
		TrackingPixel: base + "/email/" + id + ".gif",
	}
}

// nl2br inserts "<br />" before every line break, as PHP's nl2br does.
func nl2br(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			b.WriteString("<br />")
			b.WriteByte(c)
			// "\r\n" and "\n\r" are one break.
			if i+1 < len(s) && (s[i+1] == '\r' || s[i+1] == '\n') && s[i+1] != c {
				i++
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// stripTags removes HTML tags and comments, like PHP's strip_tags: Mautic
// re-strips the text part when token replacement changed it.
func stripTags(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '<' || i+1 >= len(s) || !isTagStart(s[i+1]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		// Skip to the closing '>' outside quotes.
		var quote byte
		j := i + 1
		for ; j < len(s); j++ {
			c := s[j]
			if quote != 0 {
				if c == quote {
					quote = 0
				}
				continue
			}
			if c == '"' || c == '\'' {
				quote = c
				continue
			}
			if c == '>' {
				break
			}
		}
		i = j + 1
	}
	return b.String()
}

func isTagStart(c byte) bool {
	return c == '/' || c == '!' || c == '?' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// insertPixel puts the tracking image before the last </body>, or at the
// end without one (Mautic's MailHelper::setBody; Mautic matches </body>
// case-sensitively, and so do we).
func insertPixel(html string) string {
	if i := strings.LastIndex(html, "</body>"); i >= 0 {
		return html[:i] + trackingImg + html[i:]
	}
	return html + trackingImg
}

// insertPreheader puts the hidden preheader right after the opening <body>
// tag, or first without one.
func insertPreheader(html, preheader string) string {
	div := `<div class="preheader" style="display:none !important;visibility:hidden;mso-hide:all;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;">` +
		preheader + `</div>`
	lower := asciiLower(html)
	for off := 0; ; {
		i := strings.Index(lower[off:], "<body")
		if i < 0 {
			return div + html
		}
		i += off
		next := i + len("<body")
		if next < len(lower) && (lower[next] == '>' || lower[next] == ' ' || lower[next] == '\t' ||
			lower[next] == '\n' || lower[next] == '\r' || lower[next] == '/') {
			end := strings.IndexByte(lower[next:], '>')
			if end < 0 {
				return div + html
			}
			at := next + end + 1
			return html[:at] + div + html[at:]
		}
		off = next
	}
}

// reservedHeaders are set by the sender and cannot be overridden by
// emails.headers (canonical form).
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Reply-To": true, "Sender": true,
	"Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Content-Disposition": true,
	"Return-Path": true, "Received": true, "X-Email-Id": true,
	"List-Unsubscribe": true, "List-Unsubscribe-Post": true,
}

// validHeaderName reports whether name is an RFC 5322 field name.
func validHeaderName(name string) bool {
	if name == "" || len(name) > 76 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// validHeaderValue rejects values that would break the header block.
func validHeaderValue(v string) bool {
	return !strings.ContainsAny(v, "\r\n\x00") && len(v) <= 900
}

// errInvalidRecipient is the cause of an unreachable send without SMTP.
var errInvalidRecipient = errors.New("invalid recipient address")

// built is a rendered message ready for the SMTP transaction.
type built struct {
	raw       []byte        // the MIME message, CRLF line ends, ending in CRLF
	buf       *bytes.Buffer // holds raw; back to rawPool on release
	data      []byte        // raw as DATA content, end-of-data line included (dotted)
	from      string        // envelope sender
	rcpt      string        // the contact
	bcc       []string      // extra envelope recipients
	messageID string        // with angle brackets
	tokens    map[string]string
	skipped   []string // problems worth a warning (no personal data)
}

// build renders msg into a MIME message. Errors are classified: a bad
// recipient is Unreachable, bad content or sender is Permanent.
func (s *Sender) build(msg channels.Message) (*built, error) {
	rcpt, from, err := s.addresses(msg)
	if err != nil {
		return nil, err
	}
	return s.compose(msg, rcpt, from), nil
}

// compose renders msg, whose recipient and sender addresses checked
// already, into a MIME message.
func (s *Sender) compose(msg channels.Message, rcpt string, from *mail.Address) *built {
	e := msg.Email
	b := &built{rcpt: rcpt, from: from.Address}

	// Tokens: contact tokens (with company data, as Mautic passes it for
	// email) first, then Mautic's email tokens.
	opts := render.Options{Company: true, DateFormat: s.cfg.DateFormat, TimeFormat: s.cfg.TimeFormat}
	html := e.HTML
	if html != "" && e.PreheaderText != "" {
		html = insertPreheader(html, e.PreheaderText)
	}
	if html != "" && !s.cfg.DisableTrackingPixel {
		html = insertPixel(html)
	}
	headers := customHeaders(e.Headers, &b.skipped)
	texts := []string{e.Subject, html, e.Text, s.cfg.UnsubscribeText, s.cfg.WebviewText, s.cfg.SignatureText}
	for _, h := range headers {
		texts = append(texts, h[1])
	}
	var found []string
	for _, t := range texts {
		found = append(found, render.Find(t)...)
	}
	contact := render.Tokens(found, msg.Contact, opts)
	replace := func(text string) string { return render.Replace(text, contact, true) }

	urls := buildURLs(s.cfg.siteBase, s.cfg.SecretKey, msg.TrackingHash, rcpt)
	pixel := urls.TrackingPixel
	if pixel == "" {
		pixel = blankPixel
	}
	subject := replace(e.Subject)
	tokens := make(map[string]string, len(contact)+9)
	for k, v := range contact {
		tokens[k] = v
	}
	tokens["{unsubscribe_url}"] = urls.Unsubscribe
	tokens["{unsubscribe_text}"] = strings.ReplaceAll(replace(s.cfg.UnsubscribeText), "|URL|", urls.Unsubscribe)
	tokens["{dnc_url}"] = urls.DNC
	tokens["{webview_url}"] = urls.Webview
	tokens["{webview_text}"] = strings.ReplaceAll(replace(s.cfg.WebviewText), "|URL|", urls.Webview)
	tokens["{signature}"] = strings.ReplaceAll(nl2br(replace(s.cfg.SignatureText)), "|FROM_NAME|", from.Name)
	tokens["{subject}"] = subject
	tokens["{tracking_pixel}"] = pixel
	if urls.Unsubscribe == "" {
		// Without a site URL these links cannot work: render no link at all.
		tokens["{unsubscribe_text}"] = ""
		tokens["{webview_text}"] = ""
	}
	b.tokens = tokens
	final := func(text string) string { return render.Replace(text, tokens, true) }

	c := composition{date: time.Now(), from: from, to: &mail.Address{Name: contactName(msg.Contact), Address: rcpt},
		replyTo: addressList(e.ReplyTo, "reply-to", &b.skipped), unsubscribe: urls.Unsubscribe}
	for _, a := range addressList(e.BCC, "bcc", &b.skipped) {
		if !strings.EqualFold(a.Address, rcpt) {
			b.bcc = append(b.bcc, a.Address)
		}
	}
	c.subject = final(subject)
	b.messageID = s.messageID(msg, from.Address)
	c.messageID = strings.Trim(b.messageID, "<>")
	emailID := e.ID
	if emailID == 0 {
		emailID = msg.ChannelID
	}
	c.headers = append(make([][2]string, 0, len(headers)+1), [2]string{"X-EMAIL-ID", strconv.FormatInt(emailID, 10)})
	for _, h := range headers {
		v := final(h[1])
		if !validHeaderValue(v) {
			b.skipped = append(b.skipped, "header "+h[0]+": value breaks the header")
			continue
		}
		c.headers = append(c.headers, [2]string{h[0], v})
	}

	text := e.Text
	if text != "" {
		if replaced := final(text); replaced != text {
			text = stripTags(replaced)
		}
	}
	switch {
	case html != "" && text != "":
		c.text, c.html = text, final(html)
	case html != "":
		c.html = final(html)
	default:
		c.text = text
	}
	b.buf = rawPool.Get().(*bytes.Buffer)
	writeMIME(b.buf, &c)
	if !bytes.HasSuffix(b.buf.Bytes(), []byte("\r\n")) {
		b.buf.WriteString("\r\n")
	}
	b.raw = b.buf.Bytes()
	return b
}

// release gives the message's buffer back (unless an unusually big
// message grew it: the pool would keep it for good); b is not used after.
func (b *built) release() {
	if b.buf != nil {
		if b.buf.Cap() <= maxPooled {
			b.buf.Reset()
			rawPool.Put(b.buf)
		}
		b.buf, b.raw = nil, nil
	}
}

// maxPooled is the biggest buffer kept for reuse.
const maxPooled = 1 << 20

// dotted returns the message as DATA content (for a server without
// CHUNKING, or with BCC copies), made on first use.
func (b *built) dotted() []byte {
	if b.data == nil {
		b.data = appendData(make([]byte, 0, len(b.raw)+len(b.raw)/32+8), b.raw)
	}
	return b.data
}

// addresses checks what build needs before it renders anything, and
// returns the recipient and the sender: the contact's address (Unreachable
// when malformed), the content and the sender (Permanent when missing or
// malformed). Send runs it before waiting for a connection, so that a send
// that cannot succeed fails at once.
func (s *Sender) addresses(msg channels.Message) (rcpt string, from *mail.Address, err error) {
	e := msg.Email
	if e == nil {
		return "", nil, channels.Errorf(channels.KindPermanent, "email: message has no email content")
	}
	if e.HTML == "" && e.Text == "" {
		return "", nil, channels.Errorf(channels.KindPermanent, "email %d: no html nor text body", e.ID)
	}
	to := strings.TrimSpace(msg.To)
	if to == "" {
		to = strings.TrimSpace(msg.Contact.Field("email"))
	}
	r, err := parseAddress(to)
	if err != nil || r.Name != "" || r.Address != to {
		return "", nil, channels.Unreachable(fmt.Errorf("email: %w", errInvalidRecipient))
	}
	if s.cfg.siteBase != "" && msg.TrackingHash == "" {
		return "", nil, channels.Errorf(channels.KindPermanent, "email: message has no tracking hash")
	}
	// Sender: the emails row, else SMTP_FROM (address and name separately,
	// as Mautic falls back to mailer_from_email and mailer_from_name).
	from = &mail.Address{Name: s.cfg.from.Name, Address: s.cfg.from.Address}
	if fa := strings.TrimSpace(e.FromAddress); fa != "" {
		a, err := parseAddress(fa)
		if err != nil || a.Name != "" {
			return "", nil, channels.Errorf(channels.KindPermanent, "email %d: invalid from address", e.ID)
		}
		from.Address = a.Address
	}
	if fn := strings.TrimSpace(e.FromName); fn != "" {
		from.Name = fn
	}
	if strings.ContainsAny(from.Name, "\r\n") {
		from.Name = ""
	}
	if from.Address == "" {
		return "", nil, channels.Errorf(channels.KindPermanent, "email %d has no from address and SMTP_FROM is not set", e.ID)
	}
	return r.Address, from, nil
}

// contactName is "firstname lastname", trimmed.
func contactName(c channels.Contact) string {
	name := strings.TrimSpace(strings.TrimSpace(c.Field("firstname")) + " " + strings.TrimSpace(c.Field("lastname")))
	if strings.ContainsAny(name, "\r\n") {
		return ""
	}
	return name
}

// addressList parses a comma-separated list of bare addresses, skipping
// (and noting) invalid ones.
func addressList(list, what string, skipped *[]string) []*mail.Address {
	var out []*mail.Address
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, err := parseAddress(part)
		if err != nil {
			*skipped = append(*skipped, what+": invalid address skipped")
			continue
		}
		out = append(out, a)
	}
	return out
}

// customHeaders returns emails.headers in a stable order, without reserved
// or malformed names (noted in skipped).
func customHeaders(h map[string]string, skipped *[]string) [][2]string {
	out := make([][2]string, 0, len(h))
	seen := map[string]bool{}
	for name, value := range h {
		name = strings.TrimSpace(name)
		if !validHeaderName(name) {
			*skipped = append(*skipped, "header: invalid name skipped")
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if reservedHeaders[canon] || seen[canon] {
			*skipped = append(*skipped, "header "+canon+": reserved or duplicate, skipped")
			continue
		}
		if !validHeaderValue(value) {
			*skipped = append(*skipped, "header "+canon+": value breaks the header, skipped")
			continue
		}
		seen[canon] = true
		out = append(out, [2]string{canon, value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// asciiLower lower-cases ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// randomKey makes a Message-ID local part for a message without a key.
func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// messageID is deterministic per msg.Key: <key@host>, host being the site
// URL's host, else the sender's domain. Characters outside
// [A-Za-z0-9_=+-] become '-', and then a short hash of the key keeps ids
// distinct.
func (s *Sender) messageID(msg channels.Message, fromAddr string) string {
	key := msg.Key
	if key == "" {
		key = msg.TrackingHash
	}
	if key == "" {
		key = randomKey()
	}
	host := s.cfg.siteHost
	if host == "" {
		if i := strings.LastIndexByte(fromAddr, '@'); i >= 0 {
			host = fromAddr[i+1:]
		}
	}
	host = strings.Trim(sanitizeIDPart(host, true), ".")
	if host == "" {
		host = "localhost"
	}
	local := sanitizeIDPart(key, false)
	if local != key || len(local) > 64 {
		sum := sha256.Sum256([]byte(key))
		if len(local) > 64 {
			local = local[:64]
		}
		local += "." + hex.EncodeToString(sum[:6])
	}
	return "<" + local + "@" + host + ">"
}

func sanitizeIDPart(s string, dots bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '=', c == '+', c == '-':
		case dots && c == '.':
		default:
			b[i] = '-'
		}
	}
	return string(b)
}
