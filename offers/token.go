package offers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Token errors; each is distinct so callers can answer precisely.
var (
	ErrTokenMalformed  = errors.New("token malformed")
	ErrTokenUnknownKey = errors.New("token signed with an unknown key")
	ErrTokenSignature  = errors.New("token signature invalid")
)

// Signer makes and checks offer tokens: "<key id>.<offer id>.<expiry unix>.<mac>",
// an HMAC-SHA256 over the first three parts. Several keys may verify while one
// signs, so keys can be rotated without invalidating offers already sent.
type Signer struct {
	current string
	keys    map[string][]byte
}

// NewSigner returns a signer that signs with keys[current] and verifies with any key.
func NewSigner(current string, keys map[string][]byte) (*Signer, error) {
	k, ok := keys[current]
	if !ok {
		return nil, fmt.Errorf("signing key %q is not among the keys", current)
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("signing key %q is %d bytes; at least 32 are needed", current, len(k))
	}
	for id := range keys {
		if id == "" || strings.Contains(id, ".") {
			return nil, fmt.Errorf("key id %q must be non-empty and contain no dot", id)
		}
	}
	return &Signer{current: current, keys: keys}, nil
}

// Token returns the signed token for an offer.
func (s *Signer) Token(offerID uuid.UUID, expires time.Time) string {
	payload := s.current + "." + offerID.String() + "." + fmt.Sprint(expires.Unix())
	return payload + "." + s.mac(s.keys[s.current], payload)
}

// Verify checks a token's signature and returns the offer id and expiry it names.
// It does not check expiry or use: that is redemption's job, against the database.
func (s *Signer) Verify(token string) (uuid.UUID, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		return uuid.Nil, time.Time{}, ErrTokenMalformed
	}
	key, ok := s.keys[parts[0]]
	if !ok {
		return uuid.Nil, time.Time{}, ErrTokenUnknownKey
	}
	payload := strings.Join(parts[:3], ".")
	if !hmac.Equal([]byte(s.mac(key, payload)), []byte(parts[3])) {
		return uuid.Nil, time.Time{}, ErrTokenSignature
	}
	id, err := uuid.Parse(parts[1])
	if err != nil {
		return uuid.Nil, time.Time{}, ErrTokenMalformed
	}
	var unix int64
	if _, err := fmt.Sscan(parts[2], &unix); err != nil {
		return uuid.Nil, time.Time{}, ErrTokenMalformed
	}
	return id, time.Unix(unix, 0), nil
}

func (s *Signer) mac(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
