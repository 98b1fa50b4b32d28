package bridge

import (
	"fmt"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
)

// sendTarget names what is being sent: by a dispatch or by a queue row.
type sendTarget struct {
	Key        string
	ContactID  int64
	MessageID  int64
	CampaignID int64
	EventID    int64
	Channel    string
	ChannelID  int64
	Properties []byte
}

// dispatchKey is the deterministic per-dispatch, per-channel key handed to
// providers (Message-ID, OneSignal idempotency key, webhook delivery id).
func dispatchKey(dispatchID int64, channel string) string {
	return fmt.Sprintf("sidecar-d%d-%s", dispatchID, channel)
}

// queueKey is the same for a message_queue row.
func queueKey(queueID int64, channel string) string {
	return fmt.Sprintf("sidecar-q%d-%s", queueID, channel)
}

// toContact converts a Mautic contact to the senders' view.
func toContact(c mautic.Contact) channels.Contact {
	return channels.Contact{ID: c.ID, Fields: c.Fields, Company: c.Company}
}

// toMessage builds the message a sender delivers from Mautic's rows.
func (b *batchData) toMessage(t sendTarget, trackingHash string) channels.Message {
	c := b.contacts[t.ContactID]
	m := channels.Message{
		Key:          t.Key,
		Channel:      channels.Name(t.Channel),
		ChannelID:    t.ChannelID,
		MessageID:    t.MessageID,
		CampaignID:   t.CampaignID,
		EventID:      t.EventID,
		Contact:      toContact(c),
		TrackingHash: trackingHash,
	}
	switch t.Channel {
	case "email":
		e := b.emails[t.ChannelID]
		m.To = c.Email()
		m.Email = &channels.EmailContent{ID: e.ID, Name: e.Name, Subject: e.Subject, HTML: e.CustomHTML, Text: e.PlainText,
			PreheaderText: e.PreheaderText, FromAddress: e.FromAddress, FromName: e.FromName, ReplyTo: e.ReplyTo, BCC: e.BCC,
			Headers: e.Headers}
	case "sms":
		s := b.sms[t.ChannelID]
		m.To = c.Phone()
		m.SMS = &channels.SMSContent{ID: s.ID, Name: s.Name, Message: s.Message}
	case "notification", "mobile_notification":
		p := b.push[t.ChannelID]
		m.PushIDs = b.playerIDs(c.ID, t.Channel == "mobile_notification")
		m.Push = &channels.PushContent{ID: p.ID, Name: p.Name, Heading: p.Heading, Message: p.Message, URL: p.URL,
			Button: p.Button, Mobile: p.Mobile, MobileSettings: p.MobileSettings}
	case "tweet":
		tw := b.tweets[t.ChannelID]
		m.To = c.Twitter()
		m.Tweet = &channels.TweetContent{ID: tw.ID, Name: tw.Name, Text: tw.Text}
	default:
		props := t.Properties
		if len(props) == 0 {
			props = []byte("[]")
		}
		m.Custom = &channels.CustomContent{Properties: props}
	}
	return m
}

// writes collects the rows a batch writes back to Mautic's tables.
type writes struct {
	emailCopies []mautic.EmailCopy
	emailStats  []mautic.EmailStat
	emailSent   map[int64]int
	smsStats    []mautic.SMSStat
	smsSent     map[int64]int
	pushStats   []mautic.PushStat
	pushSent    map[int64]int
	tweetStats  []mautic.TweetStat
	tweetSent   map[int64]int
	custom      []mautic.CustomSend
	dnc         []mautic.DNC
}

func newWrites() *writes {
	return &writes{emailSent: map[int64]int{}, smsSent: map[int64]int{}, pushSent: map[int64]int{}, tweetSent: map[int64]int{}}
}

func (w *writes) merge(o *writes) {
	w.emailCopies = append(w.emailCopies, o.emailCopies...)
	w.emailStats = append(w.emailStats, o.emailStats...)
	w.smsStats = append(w.smsStats, o.smsStats...)
	w.pushStats = append(w.pushStats, o.pushStats...)
	w.tweetStats = append(w.tweetStats, o.tweetStats...)
	w.custom = append(w.custom, o.custom...)
	w.dnc = append(w.dnc, o.dnc...)
	for k, v := range o.emailSent {
		w.emailSent[k] += v
	}
	for k, v := range o.smsSent {
		w.smsSent[k] += v
	}
	for k, v := range o.pushSent {
		w.pushSent[k] += v
	}
	for k, v := range o.tweetSent {
		w.tweetSent[k] += v
	}
}

// recordSuccess adds the stats and counters Mautic writes for a send
// (DESIGN.md section 7). source carries the campaign event, dispatchID or
// queueID the custom-channel record.
func (w *writes) recordSuccess(b *batchData, t sendTarget, msg channels.Message, r channels.Receipt, now time.Time, dispatchID, queueID int64) {
	src := mautic.Source{EventID: t.EventID}
	switch t.Channel {
	case "email":
		e := b.emails[t.ChannelID]
		copyID := b.copyID(t.ChannelID)
		w.emailCopies = append(w.emailCopies, mautic.EmailCopy{ID: copyID, Created: now, Subject: e.Subject, Body: e.CustomHTML, BodyText: e.PlainText})
		w.emailStats = append(w.emailStats, mautic.EmailStat{EmailID: t.ChannelID, ContactID: t.ContactID, EmailAddress: msg.To,
			DateSent: now, TrackingHash: msg.TrackingHash, Source: src, Tokens: r.Tokens, CopyID: copyID})
		w.emailSent[t.ChannelID]++
	case "sms":
		w.smsStats = append(w.smsStats, mautic.SMSStat{SMSID: t.ChannelID, ContactID: t.ContactID, DateSent: now,
			TrackingHash: msg.TrackingHash, Source: src, Details: "[]"})
		w.smsSent[t.ChannelID]++
	case "notification", "mobile_notification":
		w.pushStats = append(w.pushStats, mautic.PushStat{NotificationID: t.ChannelID, ContactID: t.ContactID, DateSent: now, Source: src})
		w.pushSent[t.ChannelID]++
	case "tweet":
		w.tweetStats = append(w.tweetStats, mautic.TweetStat{TweetID: t.ChannelID, ContactID: t.ContactID,
			Handle: normalizeHandle(msg.To), TwitterTweetID: r.ProviderID, DateSent: now, Source: src})
		w.tweetSent[t.ChannelID]++
	default:
		w.custom = append(w.custom, mautic.CustomSend{ContactID: t.ContactID, Channel: t.Channel, ChannelID: t.ChannelID,
			DispatchID: dispatchID, QueueID: queueID, DateSent: now})
	}
}

// recordGiveUp adds what Mautic writes when a channel is given up: a failed
// sms_message_stats row for SMS (any permanent answer or exhausted
// retries), and a DNC row for an unreachable address (reason 2) or an
// opt-out at the provider (reason 1). Failed emails and pushes write no stat.
func (w *writes) recordGiveUp(t sendTarget, msg channels.Message, kind channels.Kind, errText string, now time.Time) {
	if t.Channel == "sms" {
		w.smsStats = append(w.smsStats, mautic.SMSStat{SMSID: t.ChannelID, ContactID: t.ContactID, DateSent: now,
			TrackingHash: msg.TrackingHash, Source: mautic.Source{EventID: t.EventID}, Failed: true,
			Details: mautic.SMSFailureDetails(errText)})
	}
	switch kind {
	case channels.KindUnreachable:
		w.dnc = append(w.dnc, mautic.DNC{ContactID: t.ContactID, Channel: t.Channel, ChannelID: t.ChannelID,
			Reason: mautic.DNCBounced, Comments: truncate(errText, 1000), DateAdded: now})
	case channels.KindOptedOut:
		w.dnc = append(w.dnc, mautic.DNC{ContactID: t.ContactID, Channel: t.Channel, ChannelID: t.ChannelID,
			Reason: mautic.DNCUnsubscribed, Comments: truncate(errText, 1000), DateAdded: now})
	}
}

func normalizeHandle(h string) string {
	h = strings.TrimSpace(h)
	if h != "" && !strings.HasPrefix(h, "@") {
		h = "@" + h
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
