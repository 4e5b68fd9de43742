package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PutIngestSecret stores a partner's sealed ingestion signing secret,
// replacing the one it had.
func (s *Store) PutIngestSecret(ctx context.Context, partnerID string, sealed []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO partner_ingest_secrets (partner_id, secret) VALUES ($1, $2)
		ON CONFLICT (partner_id) DO UPDATE SET secret = excluded.secret, created_at = now()`, partnerID, sealed)
	if err != nil {
		return fmt.Errorf("storing ingestion secret: %w", err)
	}
	return nil
}

// IngestSecret returns a partner's sealed ingestion signing secret.
func (s *Store) IngestSecret(ctx context.Context, partnerID string) ([]byte, bool, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT secret FROM partner_ingest_secrets WHERE partner_id = $1`, partnerID).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading ingestion secret: %w", err)
	}
	return sealed, true, nil
}

// What ClaimIngestRequest found.
const (
	IngestNew      = "new"      // claimed: produce the batch, then FinishIngestRequest
	IngestDone     = "done"     // answered before: Status and Response are the answer
	IngestPending  = "pending"  // another request with the key is being produced now
	IngestConflict = "conflict" // the key was used with another body
)

// IngestClaim is the outcome of claiming an idempotency key.
type IngestClaim struct {
	State    string
	Status   int
	Response []byte
}

// ClaimIngestRequest claims a partner's idempotency key for a body. A key
// left pending for longer than staleAfter (its process died mid-batch) is
// claimed again.
func (s *Store) ClaimIngestRequest(ctx context.Context, partnerID, key string, bodySHA256 []byte, staleAfter time.Duration) (IngestClaim, error) {
	var c IngestClaim
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO ingest_requests (partner_id, key, body_sha256) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, partnerID, key, bodySHA256)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			c.State = IngestNew
			return nil
		}
		var hash []byte
		var status *int
		var stale bool
		if err := tx.QueryRow(ctx, `SELECT body_sha256, status, response, claimed_at < now() - make_interval(secs => $3)
			FROM ingest_requests WHERE partner_id = $1 AND key = $2 FOR UPDATE`, partnerID, key, staleAfter.Seconds()).
			Scan(&hash, &status, &c.Response, &stale); err != nil {
			return err
		}
		switch {
		case !bytes.Equal(hash, bodySHA256):
			c.State = IngestConflict
		case status != nil:
			c.State, c.Status = IngestDone, *status
		case stale:
			c.State = IngestNew
			_, err = tx.Exec(ctx, `UPDATE ingest_requests SET claimed_at = now() WHERE partner_id = $1 AND key = $2`, partnerID, key)
		default:
			c.State = IngestPending
		}
		return err
	})
	if err != nil {
		return IngestClaim{}, fmt.Errorf("claiming idempotency key: %w", err)
	}
	return c, nil
}

// FinishIngestRequest stores the answer to a claimed key.
func (s *Store) FinishIngestRequest(ctx context.Context, partnerID, key string, status int, response []byte) error {
	_, err := s.pool.Exec(ctx, `UPDATE ingest_requests SET status = $3, response = $4, finished_at = now()
		WHERE partner_id = $1 AND key = $2`, partnerID, key, status, response)
	if err != nil {
		return fmt.Errorf("storing the answer to an idempotency key: %w", err)
	}
	return nil
}

// ReleaseIngestRequest forgets a claimed key whose batch was not produced,
// so that a retry produces it.
func (s *Store) ReleaseIngestRequest(ctx context.Context, partnerID, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM ingest_requests WHERE partner_id = $1 AND key = $2 AND status IS NULL`, partnerID, key)
	if err != nil {
		return fmt.Errorf("releasing an idempotency key: %w", err)
	}
	return nil
}

// PruneIngestRequests forgets idempotency keys claimed before before.
func (s *Store) PruneIngestRequests(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM ingest_requests WHERE claimed_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("pruning idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
