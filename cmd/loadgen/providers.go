package main

import (
	"github.com/mautic-mm/sidecar/channels/sandbox"
)

// providers are the loopback stand-ins the sidecar sends to: the sandbox's
// Twilio and OneSignal endpoints and its SMTP server, in this process. They
// only count what they receive (sandbox CountOnly), so memory stays flat
// however many messages a run sends.
type providers struct {
	http *sandbox.Server
	smtp *sandbox.SMTPServer
}

func startProviders() (*providers, error) {
	h, err := sandbox.Start(sandbox.Options{CountOnly: true})
	if err != nil {
		return nil, err
	}
	m, err := sandbox.StartSMTP(sandbox.SMTPOptions{CountOnly: true})
	if err != nil {
		h.Close()
		return nil, err
	}
	return &providers{http: h, smtp: m}, nil
}

// env is the sidecar's configuration for the stand-ins.
func (p *providers) env() map[string]string {
	tw, os := p.http.TwilioConfig(), p.http.OneSignalConfig()
	return map[string]string{
		"SMTP_URL":               p.smtp.URL(),
		"SMTP_FROM":              "news@example.test",
		"TWILIO_ACCOUNT_SID":     tw.AccountSID,
		"TWILIO_AUTH_TOKEN":      tw.AuthToken,
		"TWILIO_FROM":            tw.From,
		"TWILIO_API_BASE":        tw.BaseURL,
		"ONESIGNAL_APP_ID":       os.AppID,
		"ONESIGNAL_REST_API_KEY": os.RESTAPIKey,
		"ONESIGNAL_API_BASE":     os.BaseURL,
	}
}

// delivered returns the messages accepted so far per channel.
func (p *providers) delivered() map[string]int {
	return map[string]int{
		"email":        p.smtp.Count(),
		"sms":          p.http.DeliveredCount(sandbox.Twilio),
		"notification": p.http.DeliveredCount(sandbox.OneSignal),
	}
}

// requests returns the HTTP requests received so far per provider.
func (p *providers) requests() map[string]int {
	return map[string]int{"twilio": p.http.Count(sandbox.Twilio), "onesignal": p.http.Count(sandbox.OneSignal)}
}

func (p *providers) Close() {
	p.http.Close()
	_ = p.smtp.Close()
}
