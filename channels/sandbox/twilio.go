package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// twilio imitates POST /2010-04-01/Accounts/{sid}/Messages.json.
func (s *Server) twilio(w http.ResponseWriter, r *http.Request) {
	e := s.begin(Twilio, w, r)
	if e.behave(s.take(Twilio, ""), http.StatusCreated, twilioError) {
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || !equal(user, s.opts.TwilioAccountSID) || !equal(pass, s.opts.TwilioAuthToken) || r.PathValue("sid") != s.opts.TwilioAccountSID {
		e.reply(http.StatusUnauthorized, "application/json", twilioError(http.StatusUnauthorized, &Behavior{Code: 20003, Message: "Authenticate"}), http.Header{"WWW-Authenticate": {`Basic realm="Twilio API"`}})
		return
	}
	form, err := url.ParseQuery(string(e.rec.Body))
	if err != nil {
		e.reply(http.StatusBadRequest, "application/json", twilioError(400, &Behavior{Code: 20001, Message: "Unable to parse the request body"}), nil)
		return
	}
	to := form.Get("To")
	if to != "" {
		e.rec.Addresses = []string{to}
	}
	var fail *Behavior
	switch {
	case to == "":
		fail = &Behavior{Code: 21604, Message: "A 'To' phone number is required."}
	case form.Get("Body") == "":
		fail = &Behavior{Code: 21602, Message: "Message body is required."}
	case form.Get("From") == "" && form.Get("MessagingServiceSid") == "":
		fail = &Behavior{Code: 21603, Message: "A 'From' or 'MessagingServiceSid' parameter is required to send a message."}
	case !e164.MatchString(to):
		fail = &Behavior{Code: 21211, Message: fmt.Sprintf("The 'To' number %s is not a valid phone number.", to)}
	}
	if fail != nil {
		e.reply(http.StatusBadRequest, "application/json", twilioError(400, fail), nil)
		return
	}
	b := s.take(Twilio, to)
	if e.behave(b, http.StatusCreated, twilioError) {
		return
	}

	s.mu.Lock()
	s.seq++
	sid := fmt.Sprintf("SM%032x", s.seq)
	s.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC1123Z)
	msg := map[string]any{
		"sid": sid, "account_sid": s.opts.TwilioAccountSID, "api_version": "2010-04-01",
		"to": to, "from": nilIfEmpty(form.Get("From")), "messaging_service_sid": nilIfEmpty(form.Get("MessagingServiceSid")),
		"body": form.Get("Body"), "status": "queued", "direction": "outbound-api", "num_segments": "1", "num_media": "0",
		"date_created": now, "date_updated": now, "date_sent": nil, "price": nil, "price_unit": "USD",
		"error_code": nil, "error_message": nil,
		"uri": "/2010-04-01/Accounts/" + s.opts.TwilioAccountSID + "/Messages/" + sid + ".json",
	}
	if form.Get("MessagingServiceSid") != "" {
		msg["status"] = "accepted"
	}
	body, _ := json.Marshal(msg)
	e.rec.Delivered = true
	e.reply(http.StatusCreated, "application/json", body, nil)
	if cb := form.Get("StatusCallback"); cb != "" && s.opts.TwilioStatusCallbacks {
		final, code := "delivered", 0
		if b != nil && b.DeliveryStatus != "" {
			final, code = b.DeliveryStatus, b.DeliveryErrorCode
		}
		s.statusCallbacks(cb, sid, form, final, code)
	}
}

// twilioError is Twilio's error resource.
func twilioError(status int, b *Behavior) []byte {
	code := b.Code
	if code == 0 {
		switch {
		case status == http.StatusTooManyRequests:
			code = 20429
		case status >= 500:
			code = 20500
		case status == http.StatusUnauthorized:
			code = 20003
		default:
			code = 20001
		}
	}
	msg := b.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	body, _ := json.Marshal(map[string]any{
		"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
	return body
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// equal compares credentials in constant time.
func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
