package email

import (
	"fmt"
	"math/rand/v2"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "smtp://user:pass@mail.example.com:587", From: "Mautic <m@example.com>"}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr string
	}{
		{name: "minimal", mutate: func(*Config) {}},
		{name: "with site", mutate: func(c *Config) { c.SiteURL, c.SecretKey = "https://m.example.com", "k" }},
		{name: "bare from", mutate: func(c *Config) { c.From = "m@example.com" }},
		{name: "smtps", mutate: func(c *Config) { c.URL = "smtps://mail.example.com" }},
		{name: "missing url", mutate: func(c *Config) { c.URL = "" }, wantErr: "smtp url: required"},
		{name: "bad scheme", mutate: func(c *Config) { c.URL = "sendmail://default" }, wantErr: `unsupported scheme "sendmail"`},
		{name: "no scheme", mutate: func(c *Config) { c.URL = "mail.example.com:25" }, wantErr: "smtp url"},
		{name: "missing host", mutate: func(c *Config) { c.URL = "smtp://user:pass@:25" }, wantErr: "missing host"},
		{name: "bad port", mutate: func(c *Config) { c.URL = "smtp://mail.example.com:99999" }, wantErr: "invalid port"},
		{name: "path", mutate: func(c *Config) { c.URL = "smtp://mail.example.com/x" }, wantErr: "unexpected path"},
		{name: "bad option", mutate: func(c *Config) { c.URL = "smtp://mail.example.com?verify_peer=maybe" }, wantErr: "verify_peer"},
		{name: "require tls without tls", mutate: func(c *Config) { c.URL = "smtp://h?auto_tls=0&require_tls=1" }, wantErr: "require_tls"},
		{name: "bad from", mutate: func(c *Config) { c.From = "Mautic <not-an-address>" }, wantErr: "from: invalid address"},
		{name: "relative site url", mutate: func(c *Config) { c.SiteURL, c.SecretKey = "/mautic", "k" }, wantErr: "site url: must be an absolute"},
		{name: "site url without host", mutate: func(c *Config) { c.SiteURL, c.SecretKey = "https://", "k" }, wantErr: "site url: missing host"},
		{name: "site url without secret", mutate: func(c *Config) { c.SiteURL = "https://m.example.com" }, wantErr: "secret key: required"},
		{name: "negative timeout", mutate: func(c *Config) { c.Timeout = -time.Second }, wantErr: "timeout"},
		{name: "negative pool", mutate: func(c *Config) { c.PoolSize = -1 }, wantErr: "pool size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), "pass")
		})
	}
}

func TestConfigErrorsHidePassword(t *testing.T) {
	for _, raw := range []string{
		"smtp://user:" + testPassword + "@mail.example.com:bad",
		"smtp://user:" + testPassword + "@mail.example.com:25/%zz",
		"smtp://user:" + testPassword + "@mail example.com",
		"ftp://user:" + testPassword + "@mail.example.com",
		"smtp://user:" + testPassword + "@mail.example.com:25\n",
	} {
		t.Run(raw, func(t *testing.T) {
			c := Config{URL: raw, From: "m@example.com"}
			err := c.Validate()
			require.Error(t, err)
			require.NotContains(t, err.Error(), testPassword)
			_, err = New(c, nil)
			require.Error(t, err)
			require.NotContains(t, err.Error(), testPassword)
			require.NotContains(t, c.String(), testPassword)
			require.NotContains(t, fmt.Sprint(c.LogValue()), testPassword)
		})
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		url  string
		want server
	}{
		{"smtp://mail.example.com", server{host: "mail.example.com", port: 25, autoTLS: true, verifyPeer: true}},
		{"smtps://mail.example.com", server{host: "mail.example.com", port: 465, implicitTLS: true, autoTLS: true, verifyPeer: true}},
		{"smtp://mail.example.com:465", server{host: "mail.example.com", port: 465, implicitTLS: true, autoTLS: true, verifyPeer: true}},
		{
			"smtp://us%40er:p%40ss%3Aw@mail.example.com:587?verify_peer=0&local_domain=sidecar.test&unknown=1",
			server{host: "mail.example.com", port: 587, autoTLS: true, user: "us@er", pass: "p@ss:w", helo: "sidecar.test"},
		},
		{"smtp://[::1]:2525?auto_tls=false", server{host: "::1", port: 2525, verifyPeer: true}},
		{"smtp://h?require_tls=1", server{host: "h", port: 25, autoTLS: true, requireTLS: true, verifyPeer: true}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got, err := parseServer(tc.url)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	r, err := Config{URL: "smtp://h", From: "m@example.com"}.resolve()
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, r.Timeout)
	require.Equal(t, DefaultPoolSize, r.PoolSize)
	require.Equal(t, DefaultUnsubscribeText, r.UnsubscribeText)
	require.Equal(t, DefaultWebviewText, r.WebviewText)
	require.Equal(t, DefaultSignatureText, r.SignatureText)
	require.False(t, r.DisableTrackingPixel)
	require.Empty(t, r.siteBase)
}

func TestSiteBase(t *testing.T) {
	tests := []struct{ in, base, host string }{
		{"https://m.example.com", "https://m.example.com", "m.example.com"},
		{"https://m.example.com/", "https://m.example.com", "m.example.com"},
		{"https://m.example.com/index.php", "https://m.example.com", "m.example.com"},
		{"https://m.example.com/index.php/", "https://m.example.com", "m.example.com"},
		{"http://m.example.com:8080/mautic/index.php?x=1#f", "http://m.example.com:8080/mautic", "m.example.com"},
		{"https://m.example.com/mautic/", "https://m.example.com/mautic", "m.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			base, host, err := siteBase(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.base, base)
			require.Equal(t, tc.host, host)
		})
	}
}

func TestPlainAddressAgreesWithNetMail(t *testing.T) {
	for _, s := range []string{"john@doe.email", "a.b+c@x.y-z.test", "o'neil@example.com", "x@y"} {
		require.True(t, plainAddress(s), s)
	}
	for _, s := range []string{"", "@x", "x@", "a..b@x", ".a@x", "a.@x", "a@b@c", "a@b..c", "a b@c", "\"a\"@b", "a@[1.2.3.4]", "Jo <a@b>", "é@x"} {
		require.False(t, plainAddress(s), s)
	}
	// Whatever plainAddress takes, net/mail parses to the same address.
	rng := rand.New(rand.NewPCG(3, 4))
	// Mostly atext, so that many inputs are plain; now and then a special.
	alphabet := []string{"a", "Z", "0", "x", "k", ".", ".", "..", "+", "-", "'", "@",
		" ", "\"", "<", ">", "(", ")", "[", "]", ",", ";", ":", "\\", "é", "\t"}
	taken := 0
	for range 20000 {
		var b strings.Builder
		for i := range rng.IntN(12) + 2 {
			if i == 3 {
				b.WriteByte('@')
			}
			if rng.IntN(3) > 0 {
				b.WriteString(alphabet[rng.IntN(5)])
				continue
			}
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		if !plainAddress(s) {
			continue
		}
		taken++
		a, err := mail.ParseAddress(s)
		require.NoError(t, err, "%q", s)
		require.Equal(t, mail.Address{Address: s}, *a, "%q", s)
	}
	require.Greater(t, taken, 100, "the random inputs exercise the fast path")
}
