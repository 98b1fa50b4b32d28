package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/mautic"
)

// batchData is everything a batch of routing decisions needs, loaded with a
// few queries whatever the number of contacts (never one query per contact).
type batchData struct {
	now       time.Time
	messages  map[int64]mautic.Message
	contacts  map[int64]mautic.Contact
	rules     map[int64][]mautic.FrequencyRule
	dnc       map[int64][]mautic.DNC
	pushIDs   map[int64][]mautic.PushID
	emails    map[int64]mautic.Email
	copyIDs   map[int64]string // email_copies ids of emails, by email id
	sms       map[int64]mautic.SMS
	push      map[int64]mautic.Push
	tweets    map[int64]mautic.Tweet
	frequency map[string]map[int64]mautic.FrequencyStatus
}

// copyID returns the email_copies id of an email of the batch: an md5 of
// its subject and HTML, computed once per batch at load rather than once
// per send.
func (b *batchData) copyID(id int64) string {
	if c, ok := b.copyIDs[id]; ok {
		return c
	}
	e := b.emails[id]
	return mautic.EmailCopyID(e.Subject, e.CustomHTML)
}

// want is one (contact, message) pair to load for.
type want struct {
	ContactID int64
	MessageID int64
	// Channels restricts the frequency reads (queue rows: one channel);
	// nil means every candidate channel of the message.
	Channels []string
	// ChannelIDs adds content rows to load (queue rows carry their own).
	Content map[string]int64
}

// loader reads Mautic's tables for routing.
type loader struct {
	db        *mautic.DB
	senders   *channels.Registry
	defaults  map[string]mautic.Limit
	msgCache  *messageCache
	hasTweets bool
}

// load reads the data for wants inside q (a transaction, or the DB).
func (l *loader) load(ctx context.Context, q mautic.Querier, wants []want, now time.Time) (*batchData, error) {
	b := &batchData{now: now, frequency: map[string]map[int64]mautic.FrequencyStatus{}}
	var contactIDs, messageIDs []int64
	for _, w := range wants {
		contactIDs = append(contactIDs, w.ContactID)
		if w.MessageID > 0 {
			messageIDs = append(messageIDs, w.MessageID)
		}
	}
	var err error
	if b.messages, err = l.msgCache.get(ctx, q, messageIDs); err != nil {
		return nil, err
	}
	if b.contacts, err = l.db.Contacts(ctx, q, contactIDs, true); err != nil {
		return nil, err
	}
	if b.rules, err = l.db.FrequencyRules(ctx, q, contactIDs); err != nil {
		return nil, err
	}
	if b.dnc, err = l.db.DoNotContact(ctx, q, contactIDs); err != nil {
		return nil, err
	}
	// Content ids and frequency reads per channel.
	content := map[string][]int64{}
	freq := map[string][]int64{}
	needPush := false
	for _, w := range wants {
		chans := w.Channels
		if m, ok := b.messages[w.MessageID]; ok {
			for _, c := range m.Channels {
				if c.ChannelID > 0 && l.senders.Has(channels.Name(c.Channel)) {
					content[c.Channel] = append(content[c.Channel], c.ChannelID)
					if w.Channels == nil {
						chans = append(chans, c.Channel)
					}
				}
			}
		}
		for ch, id := range w.Content {
			content[ch] = append(content[ch], id)
		}
		for _, ch := range chans {
			freq[ch] = append(freq[ch], w.ContactID)
			if ch == string(channels.Notification) || ch == string(channels.MobileNotification) {
				needPush = true
			}
		}
	}
	if needPush {
		if b.pushIDs, err = l.db.PushIDs(ctx, q, contactIDs); err != nil {
			return nil, err
		}
	}
	if ids := content["email"]; len(ids) > 0 {
		if b.emails, err = l.db.Emails(ctx, q, ids); err != nil {
			return nil, err
		}
		b.copyIDs = make(map[int64]string, len(b.emails))
		for id, e := range b.emails {
			b.copyIDs[id] = mautic.EmailCopyID(e.Subject, e.CustomHTML)
		}
	}
	if ids := content["sms"]; len(ids) > 0 {
		if b.sms, err = l.db.SMSMessages(ctx, q, ids); err != nil {
			return nil, err
		}
	}
	if ids := append(append([]int64(nil), content["notification"]...), content["mobile_notification"]...); len(ids) > 0 {
		if b.push, err = l.db.PushNotifications(ctx, q, ids); err != nil {
			return nil, err
		}
	}
	if ids := content["tweet"]; len(ids) > 0 && l.hasTweets {
		if b.tweets, err = l.db.Tweets(ctx, q, ids); err != nil {
			return nil, err
		}
	}
	for ch, ids := range freq {
		st, err := l.db.Frequency(ctx, q, ch, ids, b.rules, l.defaults, now)
		if err != nil {
			return nil, err
		}
		b.frequency[ch] = st
	}
	return b, nil
}

// facts builds the routing facts of one contact for one message.
func (l *loader) facts(b *batchData, contactID int64, msg mautic.Message) Facts {
	c := b.contacts[contactID]
	f := Facts{Now: b.now, Rules: b.rules[contactID], DNC: b.dnc[contactID], Channels: make([]ChannelFacts, len(msg.Channels))}
	for i, mc := range msg.Channels {
		f.Channels[i] = ChannelFacts{
			MessageChannel: mc,
			HasSender:      l.senders.Has(channels.Name(mc.Channel)),
			Content:        b.contentState(mc.Channel, mc.ChannelID),
			Address:        b.hasAddress(c, mc.Channel),
			Frequency:      b.frequency[mc.Channel][contactID],
		}
	}
	return f
}

// contentState applies each channel's "published" rule.
func (b *batchData) contentState(channel string, id int64) ContentState {
	missing := func() ContentState {
		return ContentState{Detail: fmt.Sprintf("%s content %d does not exist", channel, id)}
	}
	unpublished := func() ContentState {
		return ContentState{Detail: fmt.Sprintf("%s content %d is not published", channel, id)}
	}
	switch channel {
	case "email":
		e, ok := b.emails[id]
		if !ok {
			return missing()
		}
		if !e.PublishedAt(b.now) {
			return unpublished()
		}
	case "sms":
		s, ok := b.sms[id]
		if !ok {
			return missing()
		}
		if !s.PublishedAt(b.now) {
			return unpublished()
		}
	case "notification", "mobile_notification":
		p, ok := b.push[id]
		if !ok {
			return missing()
		}
		if !p.IsPublished {
			return unpublished()
		}
		if p.Mobile != (channel == "mobile_notification") {
			kind := "a web"
			if p.Mobile {
				kind = "a mobile"
			}
			return ContentState{Detail: fmt.Sprintf("push notification %d is %s notification, not %s content", id, kind, channel)}
		}
	case "tweet":
		t, ok := b.tweets[id]
		if !ok {
			return missing()
		}
		if !t.IsPublished {
			return unpublished()
		}
	}
	// Custom channels: the content is message_channels.properties itself.
	return ContentState{OK: true}
}

// hasAddress tells whether the contact can be reached on channel.
func (b *batchData) hasAddress(c mautic.Contact, channel string) bool {
	switch channel {
	case "email":
		return c.Email() != ""
	case "sms":
		return c.Phone() != ""
	case "notification", "mobile_notification":
		return len(b.playerIDs(c.ID, channel == "mobile_notification")) > 0
	case "tweet":
		return c.Twitter() != ""
	}
	return c.ID > 0
}

// playerIDs returns the contact's OneSignal player ids of one kind (Mautic
// does not check push_ids.enabled).
func (b *batchData) playerIDs(contactID int64, mobile bool) []string {
	var out []string
	for _, p := range b.pushIDs[contactID] {
		if p.Mobile == mobile && p.PushID != "" {
			out = append(out, p.PushID)
		}
	}
	return out
}

// messageCache keeps marketing messages (with their enabled channels) for a
// short time: intake and routing read them for every request.
type messageCache struct {
	db  *mautic.DB
	ttl time.Duration
	mu  sync.Mutex
	m   map[int64]cachedMessage
}

type cachedMessage struct {
	msg    mautic.Message
	found  bool
	expiry time.Time
}

func newMessageCache(db *mautic.DB, ttl time.Duration) *messageCache {
	return &messageCache{db: db, ttl: ttl, m: map[int64]cachedMessage{}}
}

// get returns the messages that exist among ids.
func (c *messageCache) get(ctx context.Context, q mautic.Querier, ids []int64) (map[int64]mautic.Message, error) {
	out := make(map[int64]mautic.Message, len(ids))
	now := time.Now()
	var miss []int64
	c.mu.Lock()
	for _, id := range ids {
		if e, ok := c.m[id]; ok && now.Before(e.expiry) {
			if e.found {
				out[id] = e.msg
			}
			continue
		}
		miss = append(miss, id)
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	loaded, err := c.db.Messages(ctx, q, miss)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10000 {
		c.m = map[int64]cachedMessage{}
	}
	for _, id := range miss {
		m, ok := loaded[id]
		if c.ttl > 0 {
			c.m[id] = cachedMessage{msg: m, found: ok, expiry: now.Add(c.ttl)}
		}
		if ok {
			out[id] = m
		}
	}
	return out, nil
}

// candidates returns the message's candidate channels (DESIGN.md 6 item 1).
func candidates(m mautic.Message, senders *channels.Registry) []mautic.MessageChannel {
	var out []mautic.MessageChannel
	for _, c := range m.Channels {
		if c.ChannelID > 0 && senders.Has(channels.Name(c.Channel)) {
			out = append(out, c)
		}
	}
	return out
}
