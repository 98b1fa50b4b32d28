package email

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/mautic-mm/sidecar/channels"
)

// stage is the SMTP step that failed; it decides what a reply code means.
type stage string

const (
	stageConnect stage = "connect"
	stagePolicy  stage = "tls policy"
	stageAuth    stage = "auth"
	stageNoop    stage = "noop"
	stageMail    stage = "mail from"
	stageRcpt    stage = "rcpt to"
	stageData    stage = "data"
	stageDataEnd stage = "data end"
)

// operatorError marks failures an operator must fix (bad credentials, a
// server that refuses us): they are logged at error level.
type operatorError struct{ err error }

func (e *operatorError) Error() string { return e.err.Error() }
func (e *operatorError) Unwrap() error { return e.err }

// dialError classifies a failure while connecting: 4xx and network or TLS
// errors are transient; a 5xx greeting, EHLO or STARTTLS reply, failed
// authentication (530, 535, ...) and a TLS policy violation are permanent
// and need an operator.
func dialError(err error, st stage) error {
	var te *textproto.Error
	switch {
	case st == stagePolicy:
		return channels.Permanent(&operatorError{err})
	case errors.Is(err, errNoAuthMechanism):
		return channels.Permanent(&operatorError{err})
	case errors.As(err, &te) && te.Code >= 500:
		return channels.Permanent(&operatorError{err})
	}
	return channels.Transient(err, 0)
}

// ctxError is the error of a send whose context ended.
func ctxError(ctx context.Context) error {
	return channels.Transient(fmt.Errorf("email send: %w", context.Cause(ctx)), 0)
}

var enhancedRe = regexp.MustCompile(`^([245])\.(\d{1,3})\.(\d{1,3})\b`)

// enhanced parses the RFC 3463 status code at the start of a reply text.
// ok is false when there is none or it is the uninformative X.0.0.
func enhanced(msg string) (class, subject, detail int, ok bool) {
	m := enhancedRe.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0, 0, false
	}
	class, _ = strconv.Atoi(m[1])
	subject, _ = strconv.Atoi(m[2])
	detail, _ = strconv.Atoi(m[3])
	if subject == 0 && detail == 0 {
		return class, 0, 0, false
	}
	return class, subject, detail, true
}

// mailboxGone reports whether a 5xx reply says the recipient address
// itself is bad: RFC 3463 X.1.1 bad mailbox, X.1.2 bad domain, X.1.3 bad
// syntax, X.1.6 moved, X.1.10 null MX, X.2.1 disabled; without an enhanced
// code, 550, 551 and 553. Policy refusals (X.7.x, relay denied), a full
// mailbox and other 5xx are not: marking the contact bounced for them would
// add wrong DNC rows.
func mailboxGone(code int, msg string, basicCodes bool) bool {
	if _, subj, det, ok := enhanced(msg); ok {
		switch subj {
		case 1:
			return det == 1 || det == 2 || det == 3 || det == 6 || det == 10
		case 2:
			return det == 1
		}
		return false
	}
	return basicCodes && (code == 550 || code == 551 || code == 553)
}

// replyError classifies an SMTP reply error of the transaction. Replies
// are copied with the recipient's address masked (no personal data in
// errors).
func replyError(st stage, te *textproto.Error, rcpt string) error {
	red := &textproto.Error{Code: te.Code, Msg: maskAddress(te.Msg, rcpt)}
	err := fmt.Errorf("smtp %s: %w", st, red)
	switch {
	case te.Code < 500:
		return channels.Transient(err, 0)
	case st == stageRcpt && mailboxGone(te.Code, te.Msg, true):
		return channels.Unreachable(err)
	case st == stageDataEnd && mailboxGone(te.Code, te.Msg, false):
		return channels.Unreachable(err)
	case st == stageMail || (st == stageRcpt && isPolicy(te)):
		// The server refuses our sender or to relay for us: every send
		// will fail the same way.
		return channels.Permanent(&operatorError{err})
	}
	return channels.Permanent(err)
}

func isPolicy(te *textproto.Error) bool {
	if te.Code == 530 {
		return true
	}
	_, subj, _, ok := enhanced(te.Msg)
	return ok && subj == 7
}

// maskAddress replaces addr in s, whatever its case, by "<recipient>".
func maskAddress(s, addr string) string {
	if addr == "" {
		return s
	}
	ls, la := strings.ToLower(s), strings.ToLower(addr)
	if len(ls) != len(s) || !strings.Contains(ls, la) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(ls, la)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("<recipient>")
		s, ls = s[i+len(addr):], ls[i+len(la):]
	}
}
