package sandbox

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mautic-mm/sidecar/channels/sms"
)

// Callback is one status callback the Twilio stand-in posted.
type Callback struct {
	URL  string
	Form url.Values
	// Status is the HTTP status the callback URL answered; 0 when the post
	// failed (Err says why).
	Status int
	Err    error
	At     time.Time
}

// Callbacks returns the status callbacks posted so far, in order.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Callback(nil), s.callbacks...)
}

// WaitForCallbacks blocks until at least n status callbacks were posted (or
// failed), or ctx is done.
func (s *Server) WaitForCallbacks(ctx context.Context, n int) error {
	_, err := s.changed.waitFor(ctx, &s.mu, n, func() int { return s.callbackCount })
	return err
}

// statusCallbacks posts "sent" then final to callbackURL in the background,
// as Twilio does after accepting a message.
func (s *Server) statusCallbacks(callbackURL, sid string, req url.Values, final string, code int) {
	client := s.opts.CallbackClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	base := url.Values{
		"AccountSid": {s.opts.TwilioAccountSID}, "MessageSid": {sid}, "SmsSid": {sid},
		"To": {req.Get("To")}, "From": {req.Get("From")}, "ApiVersion": {"2010-04-01"},
	}
	if ms := req.Get("MessagingServiceSid"); ms != "" {
		base.Set("MessagingServiceSid", ms)
		base.Set("From", "+15005550006")
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, status := range []string{"sent", final} {
			form := url.Values{}
			for k, v := range base {
				form[k] = v
			}
			form.Set("MessageStatus", status)
			form.Set("SmsStatus", status)
			if status == final && code != 0 {
				form.Set("ErrorCode", strconv.Itoa(code))
			}
			if !s.postCallback(client, callbackURL, form) {
				return
			}
		}
	}()
}

// postCallback posts one signed callback and records it. It returns false
// when the server is closing.
func (s *Server) postCallback(client *http.Client, callbackURL string, form url.Values) bool {
	cb := Callback{URL: callbackURL, Form: form}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, callbackURL, strings.NewReader(form.Encode()))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(sms.SignatureHeader, sms.Sign(s.opts.TwilioAuthToken, callbackURL, form))
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			cb.Status = resp.StatusCode
		}
	}
	cb.Err, cb.At = err, time.Now().UTC()
	s.mu.Lock()
	s.callbackCount++
	if !s.opts.CountOnly {
		s.callbacks = append(s.callbacks, cb)
	}
	s.changed.notify()
	s.mu.Unlock()
	return s.ctx.Err() == nil
}
