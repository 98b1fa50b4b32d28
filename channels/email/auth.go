package email

import (
	"errors"
	"slices"
	"strings"

	"github.com/wneessen/go-mail/smtp"
)

// errNoAuthMechanism: the server offers AUTH but none of our mechanisms.
var errNoAuthMechanism = errors.New("smtp auth: server offers no supported mechanism (PLAIN, LOGIN, CRAM-MD5)")

// auth picks a mechanism among those the server advertises, the way
// Symfony Mailer's EsmtpTransport tries its authenticators, and delegates
// to go-mail's implementation. Over TLS PLAIN is preferred; on a plain
// connection CRAM-MD5 is preferred because it does not send the password,
// but PLAIN and LOGIN are still used when it is the only choice, as Symfony
// does (smtp:// against a server without STARTTLS).
//
// One auth value serves one connection: LOGIN keeps state between steps.
type auth struct {
	user, pass string
	next       smtp.Auth
}

// Start implements smtp.Auth.
func (a *auth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	offered := make([]string, len(server.Auth))
	for i, m := range server.Auth {
		offered[i] = strings.ToUpper(m)
	}
	order := []string{"PLAIN", "LOGIN", "CRAM-MD5"}
	if !server.TLS {
		order = []string{"CRAM-MD5", "PLAIN", "LOGIN"}
	}
	for _, mech := range order {
		if !slices.Contains(offered, mech) {
			continue
		}
		switch mech {
		case "PLAIN":
			a.next = smtp.PlainAuth("", a.user, a.pass, server.Name, true)
		case "LOGIN":
			a.next = smtp.LoginAuth(a.user, a.pass, server.Name, true)
		default:
			a.next = smtp.CRAMMD5Auth(a.user, a.pass)
		}
		return a.next.Start(server)
	}
	return "", nil, errNoAuthMechanism
}

// Next implements smtp.Auth.
func (a *auth) Next(fromServer []byte, more bool) ([]byte, error) {
	if a.next == nil {
		return nil, errNoAuthMechanism
	}
	return a.next.Next(fromServer, more)
}
