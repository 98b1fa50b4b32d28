package bridge

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/email"
	"github.com/mautic-mm/sidecar/channels/push"
	"github.com/mautic-mm/sidecar/channels/sandbox"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/channels/tweet"
	"github.com/mautic-mm/sidecar/channels/webhook"
	"github.com/mautic-mm/sidecar/internal/seed"
)

const (
	e2eSecret  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	e2eSiteURL = "https://mautic.example.test"
)

// TestRealSendersEndToEnd sends one marketing message to contacts that end
// on each channel, with the real senders against local stand-ins (SMTP,
// Twilio, OneSignal, X, a webhook), and checks every stats row and counter.
func TestRealSendersEndToEnd(t *testing.T) {
	hooks := map[string]string{"whatsapp": "wa-secret"}
	sb, err := sandbox.Start(sandbox.Options{WebhookSecrets: hooks})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	mail, err := sandbox.StartSMTP(sandbox.SMTPOptions{RejectRecipients: []string{"bounce@example.test"}})
	require.NoError(t, err)
	t.Cleanup(func() { mail.Close() })

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	reg := channels.NewRegistry()
	em, err := email.New(email.Config{URL: mail.URL(), From: "News <news@example.test>", SiteURL: e2eSiteURL, SecretKey: e2eSecret}, log)
	require.NoError(t, err)
	t.Cleanup(func() { em.Close() })
	sm, err := sms.New(sb.TwilioConfig(), client, log)
	require.NoError(t, err)
	ps, err := push.New(sb.OneSignalConfig(), client, log)
	require.NoError(t, err)
	tw, err := tweet.New(sb.XConfig(), client, log)
	require.NoError(t, err)
	wcfg := sb.WebhookConfig("whatsapp")
	wcfg.Secret = hooks["whatsapp"]
	wh, err := webhook.New(wcfg, client, log)
	require.NoError(t, err)
	for name, s := range map[channels.Name]channels.Sender{"email": em, "sms": sm, "notification": ps, "mobile_notification": ps,
		"tweet": tw, "whatsapp": wh} {
		require.NoError(t, reg.Add(name, s))
	}

	h := newHarnessWith(t, reg)
	h.start()
	c := h.content()
	_, eventID, err := h.s.Campaign(h.ctx, "Launch")
	require.NoError(t, err)
	msg := h.message(
		seed.Channel{Channel: "email", ChannelID: c.email},
		seed.Channel{Channel: "sms", ChannelID: c.sms},
		seed.Channel{Channel: "notification", ChannelID: c.push},
		seed.Channel{Channel: "mobile_notification", ChannelID: c.mobile},
		seed.Channel{Channel: "tweet", ChannelID: c.tweet},
		seed.Channel{Channel: "whatsapp", ChannelID: 3, Properties: `{"template":"hello {contactfield=firstname}"}`},
	)
	ev := itoa(eventID)

	contacts := map[string]int64{
		"email":               h.contact(seed.Contact{FirstName: "Ema", Email: "ema@example.test"}),
		"sms":                 h.contact(seed.Contact{FirstName: "Sam", Mobile: "(415) 555-2671"}),
		"notification":        h.contact(seed.Contact{FirstName: "Wen"}, "web-player-1"),
		"mobile_notification": h.contact(seed.Contact{FirstName: "Mo"}, "app-player-1"),
		"tweet":               h.contact(seed.Contact{FirstName: "Twi", Twitter: "twi_user"}),
		"whatsapp":            h.contact(seed.Contact{FirstName: "Wa"}),
		"bounce→sms":          h.contact(seed.Contact{FirstName: "Bo", Email: "bounce@example.test", Mobile: "+14155552672"}),
		"invalid→tweet":       h.contact(seed.Contact{FirstName: "In", Mobile: "+14155552673", Twitter: "@in_user"}),
	}
	sb.SetAddress(sandbox.Twilio, "+14155552673", sandbox.Behavior{Code: sandbox.TwilioInvalidNumber, Message: "invalid To"})

	got := map[string]dispatchJSON{}
	for name, id := range contacts {
		got[name] = h.wait(h.dispatch(id, msg, "campaign_id", "9", "event_id", ev))
	}
	for _, ch := range []string{"email", "sms", "notification", "mobile_notification", "tweet", "whatsapp"} {
		d := got[ch]
		require.Equal(t, "sent", d.State, "%s: %+v", ch, d.Trace)
		require.Equal(t, ch, *d.Channel)
	}
	require.Equal(t, "sms", *got["bounce→sms"].Channel)
	require.Equal(t, []string{"email:failed_permanent:provider_permanent", "sms:sent"}, traceOf(got["bounce→sms"]))
	require.Equal(t, "tweet", *got["invalid→tweet"].Channel)
	require.Contains(t, traceOf(got["invalid→tweet"]), "sms:failed_permanent:provider_permanent")

	db := h.db
	t.Run("email", func(t *testing.T) {
		id := contacts["email"]
		var hash, tokens string
		require.NoError(t, db.QueryRowx(db.Fmt("SELECT tracking_hash, tokens FROM {p}email_stats WHERE lead_id = ? AND email_id = ? AND source = 'campaign.event' AND source_id = ? AND is_failed = 0"),
			id, c.email, eventID).Scan(&hash, &tokens))
		require.Contains(t, tokens, e2eSiteURL+"/email/unsubscribe/"+hash+"/", "tokens stored for the web view")
		require.Equal(t, 1, db.Count(t, "email_copies", ""))
		require.Equal(t, 1, h.counted("emails", "id = ? AND sent_count = 1", c.email), "one success: the bounce is not counted")
		require.Equal(t, 0, db.Count(t, "email_stats", "lead_id = ?", contacts["bounce→sms"]), "a rejected email keeps no stat")
		require.Equal(t, 1, db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'email' AND reason = 2", contacts["bounce→sms"]))
		msgs := mail.Messages()
		require.Len(t, msgs, 1)
		m, err := msgs[0].Message()
		require.NoError(t, err)
		require.Equal(t, "Hello Ema", m.Header.Get("Subject"))
		require.Contains(t, m.Header.Get("List-Unsubscribe"), "/email/unsubscribe/"+hash+"/")
		require.Equal(t, "List-Unsubscribe=One-Click", m.Header.Get("List-Unsubscribe-Post"))
		body, _ := io.ReadAll(m.Body)
		require.Contains(t, string(body), "/email/"+hash+".gif", "the tracking pixel carries the stat's hash")
	})
	t.Run("sms", func(t *testing.T) {
		require.Equal(t, 1, db.Count(t, "sms_message_stats", "lead_id = ? AND sms_id = ? AND is_failed = 0 AND source = 'campaign.event' AND source_id = ?",
			contacts["sms"], c.sms, eventID))
		require.Equal(t, 1, db.Count(t, "sms_message_stats", "lead_id = ? AND is_failed = 0", contacts["bounce→sms"]))
		require.Equal(t, 1, db.Count(t, "sms_message_stats", "lead_id = ? AND is_failed = 1 AND details LIKE '%21211%'", contacts["invalid→tweet"]))
		require.Equal(t, 1, db.Count(t, "lead_donotcontact", "lead_id = ? AND channel = 'sms' AND reason = 2", contacts["invalid→tweet"]))
		require.Equal(t, 1, h.counted("sms_messages", "id = ? AND sent_count = 2", c.sms))
		var sent []sandbox.Request
		for _, r := range sb.Delivered(sandbox.Twilio) {
			sent = append(sent, r)
		}
		require.Len(t, sent, 2)
		bodies := map[string]string{}
		for _, r := range sent {
			bodies[r.Form().Get("To")] = r.Form().Get("Body")
		}
		require.Equal(t, "Hi Sam", bodies["+14155552671"], "E.164 and tokens")
	})
	t.Run("push", func(t *testing.T) {
		require.Equal(t, 1, db.Count(t, "push_notification_stats", "lead_id = ? AND notification_id = ? AND source = 'campaign.event'", contacts["notification"], c.push))
		require.Equal(t, 1, db.Count(t, "push_notification_stats", "lead_id = ? AND notification_id = ?", contacts["mobile_notification"], c.mobile))
		require.Equal(t, 1, h.counted("push_notifications", "id = ? AND sent_count = 1", c.push))
		require.Equal(t, 1, h.counted("push_notifications", "id = ? AND sent_count = 1", c.mobile))
		reqs := sb.Delivered(sandbox.OneSignal)
		require.Len(t, reqs, 2)
		var body map[string]any
		require.NoError(t, json.Unmarshal(reqs[0].Body, &body))
		require.NotEmpty(t, body["idempotency_key"])
	})
	t.Run("tweet", func(t *testing.T) {
		require.Equal(t, 1, db.Count(t, "tweet_stats", "lead_id = ? AND tweet_id = ? AND handle = '@twi_user' AND twitter_tweet_id IS NOT NULL", contacts["tweet"], c.tweet))
		require.Equal(t, 1, db.Count(t, "tweet_stats", "lead_id = ? AND handle = '@in_user'", contacts["invalid→tweet"]))
		require.Equal(t, 1, h.counted("tweets", "id = ? AND sent_count = 2", c.tweet))
		for _, r := range sb.Delivered(sandbox.X) {
			require.True(t, strings.Contains(string(r.Body), "@twi_user") || strings.Contains(string(r.Body), "@in_user"))
		}
	})
	t.Run("custom webhook channel", func(t *testing.T) {
		require.Equal(t, 1, db.Count(t, "sidecar_sends", "contact_id = ? AND channel = 'whatsapp' AND channel_id = 3", contacts["whatsapp"]))
		reqs := sb.Delivered(sandbox.Webhook)
		require.Len(t, reqs, 1)
		r := reqs[0]
		require.NoError(t, webhook.Verify("wa-secret", r.Header.Get("X-Sidecar-Timestamp"), r.Body, r.Header.Get("X-Sidecar-Signature"), time.Now(), time.Minute))
		require.Contains(t, string(r.Body), "hello Wa", "contact tokens rendered in the properties")
	})
}
