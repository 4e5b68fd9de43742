package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// LinkCodeTTL is how long a link code can be used.
const LinkCodeTTL = 15 * time.Minute

var (
	// ErrLinkCode is a link code that is unknown, used or expired.
	ErrLinkCode = errors.New("link code is unknown, used or expired")
	// ErrLinkedElsewhere is an account already linked to another fan than the link code's.
	ErrLinkedElsewhere = errors.New("the account is linked to another fan")
)

// Crockford's base32: no I, L, O or U, so codes read aloud and typed by hand
// survive; normalizeLinkCode maps the look-alikes back.
const linkAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// CreateLinkCode returns a one-time code with which the fan linked to this
// partner account can link an account at another partner (F1): 50 random
// bits, shown as XXXXX-XXXXX, usable once within LinkCodeTTL.
func (s *Store) CreateLinkCode(ctx context.Context, partnerID, userID string) (string, time.Time, error) {
	var raw [10]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("generating link code: %w", err)
	}
	code := make([]byte, 0, 11)
	for i, b := range raw {
		if i == 5 {
			code = append(code, '-')
		}
		code = append(code, linkAlphabet[b%32])
	}
	var expires time.Time
	err := s.pool.QueryRow(ctx, `INSERT INTO link_codes (code_hash, fan_id, partner_id, partner_user_id, expires_at)
		SELECT $3, fan_id, partner_id, partner_user_id, now() + $4::interval FROM linked_accounts
		WHERE partner_id = $1 AND partner_user_id = $2
		RETURNING expires_at`, partnerID, userID, linkCodeHash(string(code)), LinkCodeTTL.String()).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, fmt.Errorf("account %s/%s: %w", partnerID, userID, ErrNotFound)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("creating link code: %w", err)
	}
	return string(code), expires, nil
}

// useLinkCode spends a link code and returns its fan.
func useLinkCode(ctx context.Context, tx pgx.Tx, code string) (uuid.UUID, error) {
	var fan uuid.UUID
	err := tx.QueryRow(ctx, `UPDATE link_codes SET used_at = now()
		WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING fan_id`, linkCodeHash(code)).Scan(&fan)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, ErrLinkCode
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("using link code: %w", err)
	}
	return fan, nil
}

func linkCodeHash(code string) []byte {
	h := sha256.Sum256([]byte(normalizeLinkCode(code)))
	return h[:]
}

func normalizeLinkCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ':
			return -1
		case 'o', 'O':
			return '0'
		case 'i', 'I', 'l', 'L':
			return '1'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, code)
}
