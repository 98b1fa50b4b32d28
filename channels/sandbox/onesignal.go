package sandbox

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// onesignal imitates POST /api/v1/notifications.
func (s *Server) onesignal(w http.ResponseWriter, r *http.Request) {
	e := s.begin(OneSignal, w, r)
	if e.behave(s.take(OneSignal, ""), http.StatusOK, onesignalError) {
		return
	}
	auth := r.Header.Get("Authorization")
	if !equal(auth, "Basic "+s.opts.OneSignalRESTKey) && !equal(auth, "Key "+s.opts.OneSignalRESTKey) {
		e.reply(http.StatusForbidden, "application/json", onesignalError(403, &Behavior{
			Message: "Access denied.  Please include an 'Authorization: Basic' header with a valid REST API key.",
		}), nil)
		return
	}
	var req struct {
		AppID          string            `json:"app_id"`
		PlayerIDs      []string          `json:"include_player_ids"`
		Contents       map[string]string `json:"contents"`
		IdempotencyKey string            `json:"idempotency_key"`
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(e.rec.Body, &req) != nil {
		e.reply(http.StatusBadRequest, "application/json", onesignalError(400, &Behavior{Message: "app_id not found. You may be missing a Content-Type: application/json header."}), nil)
		return
	}
	e.rec.Addresses = req.PlayerIDs
	var fail string
	switch {
	case req.AppID != s.opts.OneSignalAppID:
		fail = "app_id not found. You may be missing a Content-Type: application/json header."
	case req.Contents["en"] == "":
		fail = "Message Notifications must have English language content"
	case len(req.PlayerIDs) == 0:
		fail = "You must include which players, segments, or tags you wish to send this notification to."
	}
	if fail != "" {
		e.reply(http.StatusBadRequest, "application/json", onesignalError(400, &Behavior{Message: fail}), nil)
		return
	}
	if req.IdempotencyKey != "" {
		s.mu.Lock()
		first, seen := s.idem[req.IdempotencyKey]
		s.mu.Unlock()
		if seen {
			e.rec.Duplicate = true
			e.reply(http.StatusOK, "application/json", first, nil)
			return
		}
	}

	var invalid []string
	for _, id := range req.PlayerIDs {
		b := s.take(OneSignal, id)
		if b == nil {
			continue
		}
		if b.NotSubscribed {
			invalid = append(invalid, id)
			continue
		}
		if e.behave(b, http.StatusOK, onesignalError) {
			return
		}
	}

	var answer map[string]any
	switch {
	case len(invalid) == len(req.PlayerIDs):
		answer = map[string]any{"id": "", "recipients": 0, "errors": []string{"All included players are not subscribed"}}
	case len(invalid) > 0:
		answer = map[string]any{"id": newUUID(), "recipients": len(req.PlayerIDs) - len(invalid), "errors": map[string]any{"invalid_player_ids": invalid}}
	default:
		answer = map[string]any{"id": newUUID(), "recipients": len(req.PlayerIDs), "external_id": nil}
	}
	body, _ := json.Marshal(answer)
	e.rec.Delivered = len(invalid) < len(req.PlayerIDs)
	if req.IdempotencyKey != "" {
		s.mu.Lock()
		s.idem[req.IdempotencyKey] = body
		s.mu.Unlock()
	}
	e.reply(http.StatusOK, "application/json", body, nil)
}

// onesignalError is OneSignal's {"errors": [...]}.
func onesignalError(status int, b *Behavior) []byte {
	msg := b.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	body, _ := json.Marshal(map[string]any{"errors": []string{msg}})
	return body
}

// newUUID returns a random version 4 UUID, like OneSignal's notification ids.
func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
