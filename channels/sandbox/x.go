package sandbox

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // OAuth 1.0a HMAC-SHA1, as X checks it.
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dghubble/oauth1"
)

var mentionRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_@])@([A-Za-z0-9_]{1,15})`)

// x imitates POST /2/tweets.
func (s *Server) x(w http.ResponseWriter, r *http.Request) {
	e := s.begin(X, w, r)
	if e.behave(s.take(X, ""), http.StatusCreated, xError) {
		return
	}
	if err := s.checkOAuth(r); err != nil {
		e.reply(http.StatusUnauthorized, "application/json", xError(401, &Behavior{Message: "Unauthorized"}), nil)
		return
	}
	var req struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(e.rec.Body, &req) != nil || strings.TrimSpace(req.Text) == "" {
		body, _ := json.Marshal(map[string]any{
			"errors": []map[string]any{{"parameters": map[string]any{"text": []string{}}, "message": "Requests with bodies must have content-type of application/json and a text field."}},
			"title":  "Invalid Request",
			"detail": "One or more parameters to your request was invalid.",
			"type":   "https://api.twitter.com/2/problems/invalid-request",
		})
		e.reply(http.StatusBadRequest, "application/json", body, nil)
		return
	}
	if m := mentionRe.FindStringSubmatch(req.Text); m != nil {
		e.rec.Addresses = []string{strings.ToLower(m[1])}
		if e.behave(s.take(X, strings.ToLower(m[1])), http.StatusCreated, xError) {
			return
		}
	}
	s.mu.Lock()
	dup := s.posts[req.Text]
	s.posts[req.Text] = true
	s.seq++
	id := strconv.FormatInt(1_800_000_000_000_000_000+int64(s.seq), 10)
	s.mu.Unlock()
	if dup {
		e.reply(http.StatusForbidden, "application/json", xError(403, &Behavior{Message: "You are not allowed to create a Tweet with duplicate content."}), nil)
		return
	}
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"id": id, "text": req.Text, "edit_history_tweet_ids": []string{id}}})
	e.rec.Delivered = true
	e.reply(http.StatusCreated, "application/json", body, nil)
}

// checkOAuth verifies an OAuth 1.0a user-context request as X does: the
// consumer key and token, a fresh timestamp, an unused nonce and the
// HMAC-SHA1 signature over the method, the URL and the query and OAuth
// parameters (a JSON body is not signed).
func (s *Server) checkOAuth(r *http.Request) error {
	params, err := parseOAuthHeader(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if !equal(params["oauth_consumer_key"], s.opts.XConsumerKey) || !equal(params["oauth_token"], s.opts.XAccessToken) {
		return errors.New("unknown consumer key or token")
	}
	if params["oauth_signature_method"] != "HMAC-SHA1" {
		return errors.New("unsupported signature method")
	}
	ts, err := strconv.ParseInt(params["oauth_timestamp"], 10, 64)
	if err != nil || math.Abs(time.Since(time.Unix(ts, 0)).Seconds()) > 300 {
		return errors.New("stale timestamp")
	}
	nonce := params["oauth_nonce"]
	if nonce == "" {
		return errors.New("no nonce")
	}
	got, err := base64.StdEncoding.DecodeString(params["oauth_signature"])
	if err != nil {
		return errors.New("signature is not base64")
	}

	signed := map[string]string{}
	for k, v := range r.URL.Query() {
		signed[k] = v[0]
	}
	for k, v := range params {
		if k != "oauth_signature" && k != "realm" {
			signed[k] = v
		}
	}
	pairs := make([]string, 0, len(signed))
	for k, v := range signed {
		pairs = append(pairs, oauth1.PercentEncode(k)+"="+oauth1.PercentEncode(v))
	}
	slices.Sort(pairs)
	host := strings.ToLower(r.Host)
	base := strings.Join([]string{
		r.Method,
		oauth1.PercentEncode("http://" + host + r.URL.EscapedPath()),
		oauth1.PercentEncode(strings.Join(pairs, "&")),
	}, "&")
	mac := hmac.New(sha1.New, []byte(oauth1.PercentEncode(s.opts.XConsumerSecret)+"&"+oauth1.PercentEncode(s.opts.XAccessSecret)))
	mac.Write([]byte(base))
	if !hmac.Equal(mac.Sum(nil), got) {
		return errors.New("bad signature")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nonces[nonce] {
		return errors.New("nonce reused")
	}
	s.nonces[nonce] = true
	return nil
}

// parseOAuthHeader reads `OAuth k="v", ...` (values percent-encoded).
func parseOAuthHeader(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, errors.New("no OAuth authorization")
	}
	out := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("malformed oauth parameter %q", k)
		}
		v, err := url.PathUnescape(strings.Trim(v, `"`))
		if err != nil {
			return nil, fmt.Errorf("malformed oauth value for %q", k)
		}
		out[k] = v
	}
	return out, nil
}

// xError is X's problem document.
func xError(status int, b *Behavior) []byte {
	msg := b.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	body, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "detail": msg, "type": "about:blank", "status": status})
	return body
}
