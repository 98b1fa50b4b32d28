package bridge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/mautic"
)

const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// twilioCallback is POST /v1/callbacks/twilio: Twilio's status callback
// (delivery failures recorded on the sms_message_stats row found by the
// ?stat= tracking hash) and messaging webhook (an inbound STOP marks the
// sender's contacts DNC reason 1 on sms). X-Twilio-Signature is verified
// with the Auth Token; no bearer token is needed.
func (a *App) twilioCallback(c *gin.Context) {
	if a.cfg.TwilioAuthToken == "" {
		abortJSON(c, http.StatusNotFound, "not_found", "Twilio is not configured")
		return
	}
	if contentKind(c.GetHeader("Content-Type")) != contentForm {
		abortJSON(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Twilio posts application/x-www-form-urlencoded")
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	post, err := formFieldsAll(string(body))
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	if !sms.ValidSignature(a.cfg.TwilioAuthToken, a.callbackURL(c.Request), post, c.GetHeader("X-Twilio-Signature")) {
		abortJSON(c, http.StatusForbidden, "bad_signature", "X-Twilio-Signature does not match")
		return
	}
	all := post
	for k, v := range c.Request.URL.Query() {
		all[k] = v
	}
	cb := sms.ParseStatusCallback(all)
	ctx := c.Request.Context()
	now := time.Now().UTC()
	if cb.Stat != "" {
		if err := a.recordSMSStatus(ctx, cb, now); err != nil {
			a.writeError(c, err, "")
			return
		}
	} else if cb.OptOut() && cb.From != "" {
		if err := a.recordOptOut(ctx, cb.From, now); err != nil {
			a.writeError(c, err, "")
			return
		}
	}
	c.Data(http.StatusOK, "text/xml; charset=utf-8", []byte(twiml))
}

// callbackURL is the URL Twilio signed: SIDECAR_PUBLIC_URL plus the path and
// query when configured, else the URL as this request arrived.
func (a *App) callbackURL(r *http.Request) string {
	if a.cfg.PublicURL != "" {
		return strings.TrimRight(a.cfg.PublicURL, "/") + r.URL.RequestURI()
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// recordSMSStatus marks the stat failed (and adds DNC for a dead number or an
// opt-out) when Twilio reports a delivery failure.
func (a *App) recordSMSStatus(ctx context.Context, cb sms.StatusCallback, now time.Time) error {
	kind, failed := cb.FailureKind()
	if !failed {
		return nil
	}
	ref, ok, err := a.db.SMSStatByHash(ctx, a.db, cb.Stat)
	if err != nil || !ok {
		return err
	}
	reason := strings.TrimSpace(fmt.Sprintf("twilio %s %s: %s", cb.MessageStatus, cb.ErrorCode, cb.ErrorMessage))
	tx, err := a.store.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := a.db.MarkSMSStatFailed(ctx, tx, ref.ID, reason); err != nil {
		return err
	}
	if ref.ContactID > 0 {
		var dnc mautic.DNCReason
		switch kind {
		case channels.KindOptedOut:
			dnc = mautic.DNCUnsubscribed
		case channels.KindUnreachable:
			dnc = mautic.DNCBounced
		}
		if dnc != 0 {
			if _, err := a.db.AddDoNotContact(ctx, tx, mautic.DNC{ContactID: ref.ContactID, Channel: "sms", ChannelID: ref.SMSID,
				Reason: dnc, Comments: reason, DateAdded: now}); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// recordOptOut adds DNC reason 1 on sms for the contacts whose number is from.
func (a *App) recordOptOut(ctx context.Context, from string, now time.Time) error {
	want, err := sms.Normalize(from, "US")
	if err != nil {
		return nil // not a number we could have sent to
	}
	digits := strings.TrimPrefix(want, "+")
	if len(digits) > 9 {
		digits = digits[len(digits)-9:]
	}
	matches, err := a.db.ContactsByPhoneDigits(ctx, digits)
	if err != nil {
		return err
	}
	for _, m := range matches {
		num := m.Mobile
		if num == "" {
			num = m.Phone
		}
		if n, err := sms.Normalize(num, a.smsRegion()); err != nil || n != want {
			continue
		}
		if _, err := a.db.AddDoNotContact(ctx, a.db, mautic.DNC{ContactID: m.ContactID, Channel: "sms", Reason: mautic.DNCUnsubscribed,
			Comments: "replied with an opt-out keyword (Twilio)", DateAdded: now}); err != nil {
			return err
		}
		a.log.Info("sms opt-out recorded", "contact_id", m.ContactID)
	}
	return nil
}

func (a *App) smsRegion() string {
	if a.cfg.SMSRegion != "" {
		return a.cfg.SMSRegion
	}
	return "US"
}

// formFieldsAll parses a form body keeping every value.
func formFieldsAll(raw string) (map[string][]string, error) {
	vals, err := parseQueryStrict(raw)
	if err != nil {
		return nil, badRequest("the form data is not valid URL encoding")
	}
	return vals, nil
}
