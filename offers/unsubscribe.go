package offers

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Unsubscribe tokens name the email address an unsubscribe link stops mail
// to: "<key id>.<sealed address>", the address encrypted and authenticated
// with AES-256-GCM under keys derived from the signer's key. The link
// therefore works without a database look-up, keeps working after the offer
// ended or the fan was erased (the address's suppression outlives both), and
// shows no address to whoever sees the URL. The nonce is derived from the
// address, so one address always gets the same token: the same plaintext
// under the same nonce reveals nothing more than that it is the same.

const (
	unsubscribeSealLabel = "crescendo unsubscribe token v1: seal"
	unsubscribeNonceKey  = "crescendo unsubscribe token v1: nonce"
)

// unsubscribeAEAD returns the cipher and nonce key derived from key.
func unsubscribeAEAD(key []byte) (cipher.AEAD, []byte) {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive(unsubscribeSealLabel))
	if err != nil {
		panic("offers: AES-256 refused a 32-byte key: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("offers: building AES-GCM: " + err.Error())
	}
	return aead, derive(unsubscribeNonceKey)
}

// UnsubscribeToken returns the token of the unsubscribe link for mail to
// address (see VerifyUnsubscribe).
func (s *Signer) UnsubscribeToken(address string) string {
	aead, nonceKey := unsubscribeAEAD(s.keys[s.current])
	m := hmac.New(sha256.New, nonceKey)
	m.Write([]byte(address))
	nonce := m.Sum(nil)[:aead.NonceSize()]
	sealed := aead.Seal(nonce, nonce, []byte(address), []byte(s.current))
	return s.current + "." + base64.RawURLEncoding.EncodeToString(sealed)
}

// VerifyUnsubscribe opens an unsubscribe token and returns the email address
// it names. Tokens sealed with any of the signer's keys open, so key rotation
// leaves earlier links working. Errors are ErrTokenMalformed,
// ErrTokenUnknownKey and ErrTokenSignature (a token not sealed by these keys,
// or altered).
func (s *Signer) VerifyUnsubscribe(token string) (string, error) {
	id, sealed, found := strings.Cut(token, ".")
	if !found || id == "" || strings.Contains(sealed, ".") {
		return "", ErrTokenMalformed
	}
	key, ok := s.keys[id]
	if !ok {
		return "", ErrTokenUnknownKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	aead, _ := unsubscribeAEAD(key)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead()+1 {
		return "", ErrTokenMalformed
	}
	address, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(id))
	if err != nil {
		return "", ErrTokenSignature
	}
	return string(address), nil
}
