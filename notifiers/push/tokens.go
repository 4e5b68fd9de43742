package push

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Stream token errors, distinct so that the stream can say which it was.
var (
	ErrStreamTokenMalformed = errors.New("stream token malformed")
	ErrStreamTokenForged    = errors.New("stream token signature invalid")
	ErrStreamTokenExpired   = errors.New("stream token expired")
)

// streamTokenPrefix starts every stream token, so that the stream tells
// one from a partner's API key in an Authorization header.
const streamTokenPrefix = "pst_"

// streamTokenLabel is signed with every token, so that no other HMAC made
// with the same key can pass for one.
const streamTokenLabel = "crescendo push stream token v1."

// StreamTokens makes and checks the short-lived tokens with which a partner
// app opens the push stream of its signed-in user (F16). The partner's
// backend, which holds the partner's API key, asks for one per user; the
// app, which must not hold that key, opens the stream with it. A token
// names the partner, the partner's user and the fan the account was linked
// to when it was made, and ends after its lifetime: a leaked one opens one
// fan's stream for minutes, not every fan's for ever.
//
// Token: "pst_" + base64url(JSON payload) + "." + base64url(HMAC-SHA256 of
// the label and the encoded payload), keyed with a secret the replicas share.
type StreamTokens struct {
	key []byte
	ttl time.Duration
}

// StreamGrant is what a stream token lets its bearer open.
type StreamGrant struct {
	PartnerID, UserID string
	Fan               uuid.UUID
	Expires           time.Time
}

type streamPayload struct {
	Partner string    `json:"p"`
	User    string    `json:"u"`
	Fan     uuid.UUID `json:"f"`
	Expires int64     `json:"e"` // Unix seconds
}

// DefaultStreamTokenTTL is how long a stream token opens streams: long
// enough for an app to connect after its backend answered, short enough
// that a leaked token is soon worthless. An open stream is not cut when its
// token ends; a reconnect needs a fresh token.
const DefaultStreamTokenTTL = 15 * time.Minute

// NewStreamTokens returns tokens signed with key (at least 32 bytes) that
// last ttl (0: DefaultStreamTokenTTL).
func NewStreamTokens(key []byte, ttl time.Duration) (*StreamTokens, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("push: stream token key is %d bytes; at least 32 are needed", len(key))
	}
	ttl = cmp.Or(ttl, DefaultStreamTokenTTL)
	if ttl < 0 {
		return nil, fmt.Errorf("push: stream token lifetime %s is negative", ttl)
	}
	return &StreamTokens{key: key, ttl: ttl}, nil
}

// Issue returns a token for the partner's user, linked to fan, that lasts
// from now for the tokens' lifetime, and when it ends.
func (s *StreamTokens) Issue(partnerID, userID string, fan uuid.UUID, now time.Time) (string, time.Time) {
	expires := now.Add(s.ttl).Truncate(time.Second)
	b, err := json.Marshal(streamPayload{Partner: partnerID, User: userID, Fan: fan, Expires: expires.Unix()})
	if err != nil {
		panic("push: encoding a stream token: " + err.Error()) // strings and a uuid always encode
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return streamTokenPrefix + payload + "." + s.mac(payload), expires
}

// IsStreamToken reports whether a bearer credential is a stream token (it
// may still be forged or expired) rather than a partner's API key.
func IsStreamToken(credential string) bool { return strings.HasPrefix(credential, streamTokenPrefix) }

// Verify checks a token's signature and lifetime at now and returns what it
// grants. Whether the account is still linked to the fan is the caller's
// to check.
func (s *StreamTokens) Verify(token string, now time.Time) (StreamGrant, error) {
	rest, ok := strings.CutPrefix(token, streamTokenPrefix)
	payload, mac, found := strings.Cut(rest, ".")
	if !ok || !found || payload == "" {
		return StreamGrant{}, ErrStreamTokenMalformed
	}
	if !hmac.Equal([]byte(mac), []byte(s.mac(payload))) {
		return StreamGrant{}, ErrStreamTokenForged
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return StreamGrant{}, ErrStreamTokenMalformed
	}
	var p streamPayload
	if err := json.Unmarshal(b, &p); err != nil || p.Partner == "" || p.User == "" || p.Fan == uuid.Nil {
		return StreamGrant{}, ErrStreamTokenMalformed
	}
	g := StreamGrant{PartnerID: p.Partner, UserID: p.User, Fan: p.Fan, Expires: time.Unix(p.Expires, 0).UTC()}
	if !now.Before(g.Expires) {
		return g, ErrStreamTokenExpired
	}
	return g, nil
}

func (s *StreamTokens) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(streamTokenLabel))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
