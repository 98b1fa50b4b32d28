package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/email"
	"github.com/mautic-mm/sidecar/channels/guard"
	"github.com/mautic-mm/sidecar/channels/push"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/channels/tweet"
	"github.com/mautic-mm/sidecar/channels/webhook"
	"github.com/mautic-mm/sidecar/mautic"
)

// senderStatus says whether a channel has a live sender, and why (not).
type senderStatus struct {
	Channel channels.Name
	Live    bool
	Detail  string
}

// senderSet is the registry filled from the configuration.
type senderSet struct {
	Registry   *channels.Registry
	Status     []senderStatus
	KeyReports []string
	// TwilioAuthToken verifies Twilio's callbacks.
	TwilioAuthToken string
	closers         []func()
}

// Close releases the senders' connections.
func (s *senderSet) Close() {
	for _, c := range s.closers {
		c()
	}
}

func (s *senderSet) add(name channels.Name, snd channels.Sender, mw channels.Middleware, detail string) error {
	if mw != nil {
		snd = mw(name, snd)
	}
	if err := s.Registry.Add(name, snd); err != nil {
		return err
	}
	s.Status = append(s.Status, senderStatus{Channel: name, Live: true, Detail: detail})
	return nil
}

func (s *senderSet) off(name channels.Name, why string) {
	s.Status = append(s.Status, senderStatus{Channel: name, Detail: why})
}

// newHTTPClient is the client every HTTP sender gets: a timeout per call and
// its own transport sized for the workers (never http.DefaultClient).
func newHTTPClient(cfg Config) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   max(cfg.Workers*cfg.BatchSize, 64),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.SendTimeout,
	}
	return &http.Client{Timeout: cfg.SendTimeout, Transport: tr}
}

// guardConfig builds the rate limits and breakers from the configuration.
func guardConfig(cfg Config) (guard.Config, error) {
	g := guard.Config{BreakerFailures: uint32(max(cfg.BreakerFails, 0)), BreakerTimeout: cfg.BreakerOpen}
	limits, err := cfg.rateLimits()
	if err != nil {
		return g, err
	}
	if len(limits) > 0 {
		g.Channels = map[channels.Name]guard.Config{}
		for ch, r := range limits {
			g.Channels[channels.Name(ch)] = guard.Config{Rate: r, Burst: int(math.Max(1, math.Ceil(r))),
				BreakerFailures: g.BreakerFailures, BreakerTimeout: g.BreakerTimeout}
		}
	}
	return g, nil
}

// buildSenders lists the senders explicitly (no registry magic): a sender
// exists only when it is configured, from the environment or, for Twilio
// and OneSignal, from Mautic's published integration settings. db may be
// nil (no Mautic fallback); reg may be nil (no metrics).
func buildSenders(ctx context.Context, cfg Config, db *mautic.DB, log *slog.Logger, reg prometheus.Registerer) (*senderSet, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	set := &senderSet{Registry: channels.NewRegistry()}
	gcfg, err := guardConfig(cfg)
	if err != nil {
		return nil, err
	}
	g, err := guard.New(gcfg, reg, log.With("component", "guard"))
	if err != nil {
		return nil, err
	}
	mw := g.Middleware
	client := newHTTPClient(cfg)

	// Email.
	if cfg.SMTPURL == "" {
		set.off(channels.Email, "SMTP_URL is not set")
	} else {
		s, err := email.New(email.Config{URL: string(cfg.SMTPURL), From: cfg.SMTPFrom, SiteURL: cfg.SiteURL,
			SecretKey: string(cfg.SecretKey), PoolSize: max(4, min(cfg.Workers, 32)), Timeout: cfg.SendTimeout},
			log.With("channel", "email"))
		if err != nil {
			set.off(channels.Email, "SMTP_URL/SMTP_FROM: "+err.Error())
		} else {
			if err := set.add(channels.Email, s, mw, "SMTP "+redactURL(string(cfg.SMTPURL))); err != nil {
				return nil, err
			}
			set.closers = append(set.closers, func() { _ = s.Close() })
		}
	}

	// SMS (Twilio).
	tw := sms.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: string(cfg.TwilioAuthToken),
		MessagingServiceSID: cfg.TwilioMessagingServiceSID, From: cfg.TwilioFrom, BaseURL: cfg.TwilioAPIBase,
		DefaultRegion: cfg.SMSDefaultRegion}
	source := "the environment"
	twilioWhy := "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set and no Twilio integration in Mautic"
	if tw.AccountSID == "" && tw.AuthToken == "" && db != nil {
		in, err := db.Integration(ctx, "Twilio", string(cfg.SecretKey))
		switch {
		case mautic.IsNotFound(err):
		case err != nil:
			set.KeyReports = append(set.KeyReports, "Twilio keys in Mautic do not decrypt: "+err.Error())
			twilioWhy = "TWILIO_* not set, and the keys of Mautic's Twilio integration do not decrypt (is MAUTIC_SECRET_KEY right?)"
		case !in.IsPublished:
			set.KeyReports = append(set.KeyReports, "Twilio integration in Mautic is not published: not used")
			twilioWhy = "TWILIO_* not set, and Mautic's Twilio integration is not published"
		default:
			tw.AccountSID, tw.AuthToken = in.APIKeys["username"], in.APIKeys["password"]
			if tw.MessagingServiceSID == "" {
				tw.MessagingServiceSID, _ = in.FeatureSettings["messaging_service_sid"].(string)
			}
			source = "Mautic's Twilio integration (plugin_integration_settings)"
			set.KeyReports = append(set.KeyReports, "Twilio keys in Mautic: decrypted")
		}
	}
	if cfg.PublicURL != "" {
		tw.StatusCallbackURL = strings.TrimRight(cfg.PublicURL, "/") + "/v1/callbacks/twilio"
	}
	switch {
	case tw.AccountSID == "" && tw.AuthToken == "":
		set.off(channels.SMS, twilioWhy)
	default:
		s, err := sms.New(tw, client, log)
		if err != nil {
			set.off(channels.SMS, "Twilio ("+source+"): "+err.Error())
		} else {
			if err := set.add(channels.SMS, s, mw, "Twilio, keys from "+source); err != nil {
				return nil, err
			}
			set.TwilioAuthToken = tw.AuthToken
		}
	}

	// Web and mobile push (OneSignal).
	os := push.Config{AppID: cfg.OneSignalAppID, RESTAPIKey: string(cfg.OneSignalRESTAPIKey), BaseURL: cfg.OneSignalAPIBase}
	source, mobile := "the environment", true
	oneSignalWhy := "ONESIGNAL_APP_ID/ONESIGNAL_REST_API_KEY not set and no OneSignal integration in Mautic"
	if os.AppID == "" && os.RESTAPIKey == "" && db != nil {
		in, err := db.Integration(ctx, "OneSignal", string(cfg.SecretKey))
		switch {
		case mautic.IsNotFound(err):
		case err != nil:
			set.KeyReports = append(set.KeyReports, "OneSignal keys in Mautic do not decrypt: "+err.Error())
			oneSignalWhy = "ONESIGNAL_* not set, and the keys of Mautic's OneSignal integration do not decrypt (is MAUTIC_SECRET_KEY right?)"
		case !in.IsPublished:
			set.KeyReports = append(set.KeyReports, "OneSignal integration in Mautic is not published: not used")
			oneSignalWhy = "ONESIGNAL_* not set, and Mautic's OneSignal integration is not published"
		default:
			os.AppID, os.RESTAPIKey = in.APIKeys["app_id"], in.APIKeys["rest_api_key"]
			source = "Mautic's OneSignal integration (plugin_integration_settings)"
			// Mautic registers mobile_notification only with the "mobile" feature.
			mobile = false
			for _, f := range in.SupportedFeatures {
				if f == "mobile" {
					mobile = true
				}
			}
			set.KeyReports = append(set.KeyReports, "OneSignal keys in Mautic: decrypted")
		}
	}
	if os.AppID == "" && os.RESTAPIKey == "" {
		set.off(channels.Notification, oneSignalWhy)
		set.off(channels.MobileNotification, oneSignalWhy)
	} else if s, err := push.New(os, client, log); err != nil {
		set.off(channels.Notification, "OneSignal ("+source+"): "+err.Error())
		set.off(channels.MobileNotification, "OneSignal ("+source+"): "+err.Error())
	} else {
		if err := set.add(channels.Notification, s, mw, "OneSignal, keys from "+source); err != nil {
			return nil, err
		}
		if mobile {
			if err := set.add(channels.MobileNotification, s, mw, "OneSignal, keys from "+source); err != nil {
				return nil, err
			}
		} else {
			set.off(channels.MobileNotification, "Mautic's OneSignal integration does not have the mobile feature")
		}
	}

	// Tweets (X API v2).
	xc := tweet.Config{ConsumerKey: string(cfg.XConsumerKey), ConsumerSecret: string(cfg.XConsumerSecret),
		AccessToken: string(cfg.XAccessToken), AccessSecret: string(cfg.XAccessSecret), BaseURL: cfg.XAPIBase}
	if xc.ConsumerKey == "" && xc.ConsumerSecret == "" && xc.AccessToken == "" && xc.AccessSecret == "" {
		set.off(channels.Tweet, "X_CONSUMER_KEY, X_CONSUMER_SECRET, X_ACCESS_TOKEN and X_ACCESS_SECRET are not set")
	} else if s, err := tweet.New(xc, client, log); err != nil {
		set.off(channels.Tweet, "X: "+err.Error())
	} else if err := set.add(channels.Tweet, s, mw, "X API v2"); err != nil {
		return nil, err
	}

	// Custom channels: signed webhooks.
	hooks, err := webhook.ConfigsFromEnv(cfg.Environ)
	if err != nil {
		return nil, fmt.Errorf("custom channel webhooks: %w", err)
	}
	names := make([]string, 0, len(hooks))
	for n := range hooks {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		hc := hooks[channels.Name(n)]
		s, err := webhook.New(hc, client, log)
		if err != nil {
			set.off(channels.Name(n), "webhook: "+err.Error())
			continue
		}
		signed := "unsigned"
		if hc.Secret != "" {
			signed = "HMAC-signed"
		}
		if err := set.add(channels.Name(n), s, mw, "webhook ("+signed+") to "+redactURL(hc.URL)); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// errNoSender is returned when nothing can be sent.
var errNoSender = errors.New("no sender is configured (see `sidecar check`)")
