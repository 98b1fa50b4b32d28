package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The delivery headers.
const (
	// DeliveryHeader carries the message key: the same for every retry of
	// one delivery, so receivers can drop repeats.
	DeliveryHeader = "X-Sidecar-Delivery"
	// TimestampHeader carries the Unix time (seconds) of the attempt.
	TimestampHeader = "X-Sidecar-Timestamp"
	// SignatureHeader carries "sha256=" and the lowercase hex
	// HMAC-SHA256, keyed with the secret, of timestamp + "." + body.
	SignatureHeader = "X-Sidecar-Signature"
)

// Verification errors, for errors.Is.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance")
)

// Sign returns the X-Sidecar-Signature value for body sent at timestamp
// (Unix seconds, as in X-Sidecar-Timestamp).
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver should: signature must be
// "sha256=<hex>" of HMAC-SHA256(secret, timestamp + "." + body), compared in
// constant time, and timestamp must be within tolerance of now (either
// side), which bounds replays. A tolerance of 0 or less skips the time
// check. It returns nil, or an error matching ErrBadSignature or ErrStale.
func Verify(secret, timestamp string, body []byte, signature string, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("webhook verify: empty secret")
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("webhook verify: timestamp is not unix seconds: %w", ErrBadSignature)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	if !ok {
		return fmt.Errorf("webhook verify: signature has no sha256= prefix: %w", ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("webhook verify: signature is not hex: %w", ErrBadSignature)
	}
	if !hmac.Equal(got, mac(secret, timestamp, body)) {
		return fmt.Errorf("webhook verify: %w", ErrBadSignature)
	}
	if tolerance > 0 {
		d := now.Sub(time.Unix(sec, 0))
		if d > tolerance || d < -tolerance {
			return fmt.Errorf("webhook verify: timestamp is %s away: %w", d.Round(time.Second), ErrStale)
		}
	}
	return nil
}
