package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mautic-mm/sidecar/channels/webhook"
)

// webhook imitates a custom channel's receiver at POST /webhook/{channel}:
// it checks the signature when the channel has a secret (5 minutes of
// tolerance) and accepts the payload.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	e := s.begin(Webhook, w, r)
	if e.behave(s.take(Webhook, ""), http.StatusOK, webhookError) {
		return
	}
	if secret := s.opts.WebhookSecrets[r.PathValue("channel")]; secret != "" {
		err := webhook.Verify(secret, r.Header.Get(webhook.TimestampHeader), e.rec.Body, r.Header.Get(webhook.SignatureHeader), time.Now(), 5*time.Minute)
		if err != nil {
			e.reply(http.StatusUnauthorized, "application/json", webhookError(401, &Behavior{Message: "invalid signature"}), nil)
			return
		}
	}
	var p webhook.Payload
	if json.Unmarshal(e.rec.Body, &p) != nil {
		e.reply(http.StatusBadRequest, "application/json", webhookError(400, &Behavior{Message: "body is not a sidecar payload"}), nil)
		return
	}
	contact := strconv.FormatInt(p.Contact.ID, 10)
	e.rec.Addresses = []string{contact}
	if e.behave(s.take(Webhook, contact), http.StatusOK, webhookError) {
		return
	}
	s.mu.Lock()
	s.seq++
	id := "wh-" + strconv.Itoa(s.seq)
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"id": id, "received": true})
	e.rec.Delivered = true
	e.reply(http.StatusOK, "application/json", body, nil)
}

func webhookError(status int, b *Behavior) []byte {
	msg := b.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	body, _ := json.Marshal(map[string]any{"error": msg})
	return body
}
