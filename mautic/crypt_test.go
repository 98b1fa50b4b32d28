package mautic

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The test vector of mautic-reference.md 9.2 (computed with PHP's OpenSSL).
const (
	cryptTestKey    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cryptTestMACKey = "0123456789abcdef0123456789abcdef"
	cryptTestIV     = "1234567890abcdef"
	cryptTestValue  = "AC0123456789abcdef"
	cryptOtherKey   = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// cryptSealRaw encrypts data as Mautic would, but without serializing it or
// adding a mac, so tests can forge any plaintext. pad=false leaves the
// padding to the caller (data must then be a multiple of 16 bytes).
func cryptSealRaw(t *testing.T, iv string, data []byte, pad bool) string {
	t.Helper()
	aesKey, _, err := cryptKeys("test", cryptTestKey)
	require.NoError(t, err)
	if pad {
		n := aes.BlockSize - len(data)%aes.BlockSize
		data = append(data, []byte(strings.Repeat(string(rune(n)), n))...)
	}
	block, err := aes.NewCipher(aesKey)
	require.NoError(t, err)
	ct := make([]byte, len(data))
	cipher.NewCBCEncrypter(block, []byte(iv)).CryptBlocks(ct, data)
	inner := base64.StdEncoding.EncodeToString(ct)
	return base64.StdEncoding.EncodeToString([]byte(inner)) + "|" + base64.StdEncoding.EncodeToString([]byte(iv))
}

// cryptWithMAC returns plain followed by its correct mac.
func cryptWithMAC(t *testing.T, plain string) []byte {
	t.Helper()
	_, macKey, err := cryptKeys("test", cryptTestKey)
	require.NoError(t, err)
	require.Equal(t, cryptTestMACKey, string(macKey))
	return append([]byte(plain), cryptMAC(macKey, []byte(plain))...)
}

// cryptRequireNoLeak requires err to mention neither the keys nor secrets.
func cryptRequireNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	for _, s := range append([]string{cryptTestKey, cryptTestMACKey, strings.ToUpper(cryptTestKey), cryptOtherKey}, secrets...) {
		require.NotContains(t, msg, s)
	}
}

func TestEncryptVector(t *testing.T) {
	got, err := cryptEncryptIV(cryptTestKey, cryptTestValue, []byte(cryptTestIV))
	require.NoError(t, err)
	require.Equal(t, vectorStored, got)

	plain, err := Serialize(cryptTestValue)
	require.NoError(t, err)
	require.Equal(t, `s:18:"AC0123456789abcdef";`, string(plain))
}

func TestDecryptVector(t *testing.T) {
	t.Run("Decrypt", func(t *testing.T) {
		v, err := Decrypt(cryptTestKey, vectorStored)
		require.NoError(t, err)
		require.Equal(t, cryptTestValue, v)
	})
	t.Run("DecryptString", func(t *testing.T) {
		s, err := DecryptString(cryptTestKey, vectorStored)
		require.NoError(t, err)
		require.Equal(t, cryptTestValue, s)
	})
	t.Run("upper-case secret key", func(t *testing.T) {
		s, err := DecryptString(strings.ToUpper(cryptTestKey), vectorStored)
		require.NoError(t, err)
		require.Equal(t, cryptTestValue, s)
	})
	t.Run("from the api_keys column", func(t *testing.T) {
		col, err := SerializeArray(map[string]string{"username": vectorStored})
		require.NoError(t, err)
		require.Equal(t, `a:1:{s:8:"username";s:197:"`+vectorStored+`";}`, string(col))
		v, err := Unserialize(col)
		require.NoError(t, err)
		a, ok := v.(*Array)
		require.True(t, ok)
		s, err := DecryptString(cryptTestKey, a.StringMap()["username"])
		require.NoError(t, err)
		require.Equal(t, cryptTestValue, s)
	})
	t.Run("whitespace and NUL around the plaintext are trimmed, as PHP trim() does", func(t *testing.T) {
		data := append([]byte(" \t\n"), cryptWithMAC(t, `s:2:"ok";`)...)
		data = append(data, 0, 0, '\v', '\r')
		s, err := DecryptString(cryptTestKey, cryptSealRaw(t, cryptTestIV, data, true))
		require.NoError(t, err)
		require.Equal(t, "ok", s)
	})
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  any
	}{
		{"string", cryptTestValue, cryptTestValue},
		{"empty string", "", ""},
		{"multibyte", "pässwörd 日本", "pässwörd 日本"},
		{"exact block multiple", strings.Repeat("x", 7), strings.Repeat("x", 7)}, // s:7:"xxxxxxx"; + mac = 80 bytes
		{"int", 42, int64(42)},
		{"null", nil, nil},
		{"array", map[string]any{"a": []string{"b"}, "n": 1.5}, phpArr("a", phpArr(0, "b"), "n", 1.5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := Encrypt(cryptTestKey, tc.value)
			require.NoError(t, err)
			again, err := Encrypt(cryptTestKey, tc.value)
			require.NoError(t, err)
			require.NotEqual(t, stored, again, "the IV must be random")

			got, err := Decrypt(cryptTestKey, stored)
			require.NoError(t, err)
			requirePHPEqual(t, tc.want, got)
		})
	}
}

func TestEncryptErrors(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   any
		iv      string
		wantErr string
	}{
		{"short key", cryptTestKey[:63], "v", cryptTestIV, "encrypt: secret key must be 64 hex characters"},
		{"non-hex key", "g" + cryptTestKey[1:], "v", cryptTestIV, "encrypt: secret key must be 64 hex characters"},
		{"short iv", cryptTestKey, "v", "1234567", "encrypt: iv is 7 bytes, want 16"},
		{"unsupported value", cryptTestKey, make(chan int), cryptTestIV, "encrypt: php serialize: unsupported type chan int"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cryptEncryptIV(tc.key, tc.value, []byte(tc.iv))
			require.EqualError(t, err, tc.wantErr)
			cryptRequireNoLeak(t, err)
		})
	}
	t.Run("Encrypt checks the key", func(t *testing.T) {
		_, err := Encrypt("", "v")
		require.EqualError(t, err, "encrypt: secret key must be 64 hex characters")
	})
}

func TestDecryptErrors(t *testing.T) {
	ctPart, ivPart, _ := strings.Cut(vectorStored, "|")
	inner, err := base64.StdEncoding.DecodeString(ctPart)
	require.NoError(t, err)
	ct, err := base64.StdEncoding.DecodeString(string(inner))
	require.NoError(t, err)
	require.Len(t, ct, 96)

	// withCT re-encodes a modified ciphertext with the vector's IV.
	withCT := func(ct []byte) string {
		inner := base64.StdEncoding.EncodeToString(ct)
		return base64.StdEncoding.EncodeToString([]byte(inner)) + "|" + ivPart
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	b64 := base64.StdEncoding.EncodeToString

	tests := []struct {
		name    string
		key     string
		stored  string
		wantErr string
	}{
		{"empty key", "", vectorStored, "decrypt: secret key must be 64 hex characters"},
		{"short key", cryptTestKey[:62], vectorStored, "decrypt: secret key must be 64 hex characters"},
		{"non-hex key", cryptTestKey[:63] + "z", vectorStored, "decrypt: secret key must be 64 hex characters"},
		{"wrong key", cryptOtherKey, vectorStored, "decrypt: bad padding (wrong key?)"},
		{"empty value", cryptTestKey, "", "decrypt: not two base64 parts separated by |"},
		{"no separator", cryptTestKey, ctPart, "decrypt: not two base64 parts separated by |"},
		{"three parts", cryptTestKey, vectorStored + "|" + ivPart, "decrypt: not two base64 parts separated by |"},
		{"ciphertext not base64", cryptTestKey, "!!!!" + vectorStored, "decrypt: ciphertext part is not valid base64"},
		{"iv not base64", cryptTestKey, ctPart + "|MTIz*", "decrypt: iv part is not valid base64"},
		{"iv too short", cryptTestKey, ctPart + "|" + b64([]byte("1234567")), "decrypt: iv is 7 bytes, want 16"},
		{"iv empty", cryptTestKey, ctPart + "|", "decrypt: iv is 0 bytes, want 16"},
		{"inner not base64", cryptTestKey, b64([]byte("not base64!")) + "|" + ivPart, "decrypt: ciphertext is not base64 inside its base64"},
		{"single base64 layer", cryptTestKey, string(inner)[:len(inner)-1] + "|" + ivPart, "decrypt: ciphertext part is not valid base64"},
		{"ciphertext empty", cryptTestKey, "|" + ivPart, "decrypt: ciphertext is 0 bytes, want a positive multiple of 16"},
		{"ciphertext not a block multiple", cryptTestKey, withCT(ct[:17]), "decrypt: ciphertext is 17 bytes, want a positive multiple of 16"},
		{"ciphertext truncated by a block", cryptTestKey, withCT(ct[:80]), "decrypt: bad padding (wrong key?)"},
		{"first ciphertext block corrupted", cryptTestKey, withCT(flip(ct, 3)), "decrypt: mac mismatch (wrong key or corrupted value)"},
		{"iv corrupted", cryptTestKey, ctPart + "|" + b64([]byte("0234567890abcdef")), "decrypt: mac mismatch (wrong key or corrupted value)"},
		{"mac corrupted", cryptTestKey, cryptSealRaw(t, cryptTestIV, flip(cryptWithMAC(t, `s:18:"AC0123456789abcdef";`), 30), true),
			"decrypt: mac mismatch (wrong key or corrupted value)"},
		{"mac upper-case", cryptTestKey, cryptSealRaw(t, cryptTestIV, []byte(`s:2:"ok";`+strings.ToUpper(string(cryptWithMAC(t, `s:2:"ok";`)[9:]))), true),
			"decrypt: mac mismatch (wrong key or corrupted value)"},
		{"value shorter than mac", cryptTestKey, cryptSealRaw(t, cryptTestIV, []byte("AC0123456789abcdef"), true),
			"decrypt: value is shorter than its mac (wrong key or corrupted value)"},
		{"padding byte zero", cryptTestKey, cryptSealRaw(t, cryptTestIV, []byte(strings.Repeat("\x00", 16)), false), "decrypt: bad padding (wrong key?)"},
		{"padding byte 17", cryptTestKey, cryptSealRaw(t, cryptTestIV, []byte(strings.Repeat("\x11", 32)), false), "decrypt: bad padding (wrong key?)"},
		{"padding bytes inconsistent", cryptTestKey, cryptSealRaw(t, cryptTestIV, []byte("AC0123456789a\x02\x03\x03"), false), "decrypt: bad padding (wrong key?)"},
		{"authentic but not serialized", cryptTestKey, cryptSealRaw(t, cryptTestIV, cryptWithMAC(t, "AC0123456789abcdef"), true),
			"decrypt: php unserialize: offset 0: expected a value type (N, b, i, d, s or a)"},
		{"authentic object", cryptTestKey, cryptSealRaw(t, cryptTestIV, cryptWithMAC(t, `O:8:"stdClass":0:{}`), true),
			"decrypt: php unserialize: offset 0: objects (O:, C:) are not allowed"},
		{"authentic with trailing data", cryptTestKey, cryptSealRaw(t, cryptTestIV, cryptWithMAC(t, `s:18:"AC0123456789abcdef";AC0123456789abcdef`), true),
			"decrypt: php unserialize: offset 26: unexpected data after the value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decrypt(tc.key, tc.stored)
			require.Nil(t, v)
			require.EqualError(t, err, tc.wantErr)
			cryptRequireNoLeak(t, err, cryptTestValue, "AC01")

			s, err := DecryptString(tc.key, tc.stored)
			require.Empty(t, s)
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestDecryptStringType(t *testing.T) {
	tests := []struct {
		name    string
		value   any
		wantErr string
	}{
		{"int", 5, "decrypt: value is int, want string"},
		{"array", []string{"AC0123456789abcdef"}, "decrypt: value is array, want string"},
		{"null", nil, "decrypt: value is null, want string"},
		{"bool", true, "decrypt: value is bool, want string"},
		{"float", 1.5, "decrypt: value is float, want string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := Encrypt(cryptTestKey, tc.value)
			require.NoError(t, err)
			_, err = DecryptString(cryptTestKey, stored)
			require.EqualError(t, err, tc.wantErr)
			cryptRequireNoLeak(t, err, cryptTestValue)
		})
	}
}

// FuzzDecrypt checks that Decrypt never panics whatever the key and value,
// never leaks the key in its errors, and that what it accepts encrypts and
// decrypts again to the same value.
func FuzzDecrypt(f *testing.F) {
	f.Add(cryptTestKey, vectorStored)
	f.Add(cryptOtherKey, vectorStored)
	f.Add(cryptTestKey, "")
	f.Add(cryptTestKey, "|")
	f.Add(cryptTestKey, "QUFBQQ==|MTIzNDU2Nzg5MGFiY2RlZg==")
	f.Add(cryptTestKey, "MTIzNDU2Nzg5MGFiY2RlZg==|MTIzNDU2Nzg5MGFiY2RlZg==")
	f.Add("00", vectorStored)
	f.Fuzz(func(t *testing.T, key, stored string) {
		v, err := Decrypt(key, stored)
		if err != nil {
			require.Nil(t, v)
			if len(key) == 64 {
				require.NotContains(t, err.Error(), key)
			}
			return
		}
		again, err := Encrypt(key, v)
		require.NoError(t, err)
		back, err := Decrypt(key, again)
		require.NoError(t, err)
		requirePHPEqual(t, v, back)
	})
}
