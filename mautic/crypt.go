package mautic

// Mautic's encryption of integration keys (plugin_integration_settings.api_keys),
// mautic-reference.md 9.2: CoreBundle's EncryptionHelper with OpenSSLCipher,
// AES-256-CBC, the same in Mautic 4.4 and 5.x.
//
// Stored value: base64(base64(AES-256-CBC(serialize(v) || mac))) + "|" + base64(iv),
// where mac is the lowercase hex HMAC-SHA256 of serialize(v), keyed with the
// last 32 characters of the lowercase hex form of the AES key (as text). The
// ciphertext is base64-encoded twice: once by openssl_encrypt, once by the helper.
//
// No error of this file contains the secret key, the mac key or any part of
// the plaintext.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	cryptIVLen  = aes.BlockSize // openssl_cipher_iv_length('AES-256-CBC')
	cryptMACLen = 2 * sha256.Size
	// cryptTrim is what PHP's trim() strips by default: Mautic trims the
	// decrypted text before splitting off the mac.
	cryptTrim = " \t\n\r\x00\x0b"
)

// cryptKeys derives the AES key and the HMAC key from Mautic's secret_key.
// op names the operation in errors. hex errors are not wrapped: they quote
// the offending character of the key.
func cryptKeys(op, secretKey string) (aesKey, macKey []byte, err error) {
	if len(secretKey) != 64 {
		return nil, nil, fmt.Errorf("%s: secret key must be 64 hex characters", op)
	}
	aesKey, err = hex.DecodeString(secretKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: secret key must be 64 hex characters", op)
	}
	// OpenSSLCipher::getHashKey: substr(bin2hex($binaryKey), -32).
	macKey = []byte(hex.EncodeToString(aesKey)[32:])
	return aesKey, macKey, nil
}

func cryptMAC(macKey, plain []byte) []byte {
	h := hmac.New(sha256.New, macKey)
	h.Write(plain)
	sum := h.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// Decrypt decrypts a value Mautic's EncryptionHelper stored (an entry of
// plugin_integration_settings.api_keys) with Mautic's secret_key (64 hex
// characters) and unserializes it: the result is what Unserialize returns.
//
// The stored base64 is decoded strictly (standard alphabet, padded), which
// is what PHP's base64_encode writes. Errors name the step that failed and
// never contain the key or the plaintext; a wrong key is reported as bad
// padding or a mac mismatch.
func Decrypt(secretKey, stored string) (any, error) {
	plain, err := cryptOpen(secretKey, stored)
	if err != nil {
		return nil, err
	}
	v, err := Unserialize(plain)
	if err != nil {
		// UnserializeError never quotes its input.
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return v, nil
}

// DecryptString is Decrypt for values that must be strings, such as every
// api_keys entry of Twilio and OneSignal.
func DecryptString(secretKey, stored string) (string, error) {
	v, err := Decrypt(secretKey, stored)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("decrypt: value is %s, want string", phpTypeName(v))
	}
	return s, nil
}

// phpTypeName names the PHP type of an Unserialize result.
func phpTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "string"
	case *Array:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// cryptOpen returns the serialized plaintext after checking padding and mac.
func cryptOpen(secretKey, stored string) ([]byte, error) {
	aesKey, macKey, err := cryptKeys("decrypt", secretKey)
	if err != nil {
		return nil, err
	}
	ctPart, ivPart, ok := strings.Cut(stored, "|")
	if !ok || strings.Contains(ivPart, "|") {
		return nil, errors.New("decrypt: not two base64 parts separated by |")
	}
	outer, err := base64.StdEncoding.DecodeString(ctPart)
	if err != nil {
		return nil, errors.New("decrypt: ciphertext part is not valid base64")
	}
	iv, err := base64.StdEncoding.DecodeString(ivPart)
	if err != nil {
		return nil, errors.New("decrypt: iv part is not valid base64")
	}
	if len(iv) != cryptIVLen {
		return nil, fmt.Errorf("decrypt: iv is %d bytes, want %d", len(iv), cryptIVLen)
	}
	ct, err := base64.StdEncoding.DecodeString(string(outer))
	if err != nil {
		return nil, errors.New("decrypt: ciphertext is not base64 inside its base64")
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("decrypt: ciphertext is %d bytes, want a positive multiple of %d", len(ct), aes.BlockSize)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err) // unreachable: the key is 32 bytes
	}
	buf := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(buf, ct)
	buf, ok = cryptUnpad(buf)
	if !ok {
		return nil, errors.New("decrypt: bad padding (wrong key?)")
	}
	buf = []byte(strings.Trim(string(buf), cryptTrim))
	if len(buf) < cryptMACLen {
		return nil, errors.New("decrypt: value is shorter than its mac (wrong key or corrupted value)")
	}
	plain, mac := buf[:len(buf)-cryptMACLen], buf[len(buf)-cryptMACLen:]
	if !hmac.Equal(mac, cryptMAC(macKey, plain)) {
		return nil, errors.New("decrypt: mac mismatch (wrong key or corrupted value)")
	}
	return plain, nil
}

// cryptUnpad strips PKCS#7 padding, checking every padding byte in constant
// time.
func cryptUnpad(b []byte) ([]byte, bool) {
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	good := 1
	for _, c := range b[len(b)-n:] {
		good &= subtle.ConstantTimeByteEq(c, byte(n))
	}
	if good != 1 {
		return nil, false
	}
	return b[:len(b)-n], true
}

// Encrypt encrypts value for Mautic's EncryptionHelper to read back: the
// format Decrypt reads, with a random IV. value is serialized with
// Serialize, as EncryptionHelper::encrypt calls serialize().
func Encrypt(secretKey string, value any) (string, error) {
	iv := make([]byte, cryptIVLen)
	if _, err := rand.Read(iv); err != nil {
		return "", fmt.Errorf("encrypt: iv: %w", err)
	}
	return cryptEncryptIV(secretKey, value, iv)
}

// cryptEncryptIV is Encrypt with a given IV, so a known vector can be
// reproduced byte for byte.
func cryptEncryptIV(secretKey string, value any, iv []byte) (string, error) {
	aesKey, macKey, err := cryptKeys("encrypt", secretKey)
	if err != nil {
		return "", err
	}
	if len(iv) != cryptIVLen {
		return "", fmt.Errorf("encrypt: iv is %d bytes, want %d", len(iv), cryptIVLen)
	}
	plain, err := Serialize(value)
	if err != nil {
		return "", fmt.Errorf("encrypt: %w", err)
	}
	data := append(plain, cryptMAC(macKey, plain)...)
	pad := aes.BlockSize - len(data)%aes.BlockSize
	for range pad {
		data = append(data, byte(pad))
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return "", fmt.Errorf("encrypt: %w", err) // unreachable: the key is 32 bytes
	}
	ct := make([]byte, len(data))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, data)
	inner := base64.StdEncoding.EncodeToString(ct) // what openssl_encrypt returns
	return base64.StdEncoding.EncodeToString([]byte(inner)) + "|" + base64.StdEncoding.EncodeToString(iv), nil
}
