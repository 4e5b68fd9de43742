package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/pipeline"
)

type accountKey [2]uint64

func (s *directorySnapshot) key(partner, user string) accountKey {
	var h maphash.Hash
	var k accountKey
	for i, seed := range s.seeds {
		h.SetSeed(seed)
		h.WriteString(partner)
		h.WriteByte(0) // partner ids cannot hold NUL: ("a", "bc") and ("ab", "c") differ
		h.WriteString(user)
		k[i] = h.Sum64()
	}
	return k
}

type directorySnapshot struct {
	partners map[string]struct{}
	// accounts is keyed by a 128-bit seeded hash of (partner, user id): the
	// key sits in the table's slot, so a lookup costs no chase to string
	// bytes elsewhere in memory. With per-process random seeds a collision
	// is out of reach even for someone choosing user ids.
	accounts accountTable
	seeds    [2]maphash.Seed
	erased   map[uuid.UUID]struct{}
	// erasedVersion changes only when the erased set does, so partition owners
	// scan their state for erased fans on erasures, not on every consent change.
	erasedVersion uint64
	// recompute is the newest index recomputation request.
	recompute int64
}

// Directory is an in-memory copy of partners and linked accounts, refreshed
// from the database, so the event path resolves identities without a query.
// It is safe for concurrent use.
type Directory struct {
	store *Store
	// mu serializes refreshes: a slow reload finishing after a newer one
	// would otherwise put back a directory from before the change.
	mu   sync.Mutex
	snap atomic.Pointer[directorySnapshot]
}

// NewDirectory loads the directory.
func (s *Store) NewDirectory(ctx context.Context) (*Directory, error) {
	d := &Directory{store: s}
	if err := d.Refresh(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// Refresh reloads the directory. A full reload (rather than changes since a
// time) also forgets erased fans and unlinked accounts.
func (d *Directory) Refresh(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := &directorySnapshot{partners: map[string]struct{}{}, erased: map[uuid.UUID]struct{}{},
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	rows, err := d.store.pool.Query(ctx, `SELECT id FROM partners`)
	if err != nil {
		return fmt.Errorf("reading partners: %w", err)
	}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		snap.partners[id] = struct{}{}
		return nil
	}); err != nil {
		return fmt.Errorf("reading partners: %w", err)
	}
	rows, err = d.store.pool.Query(ctx, `SELECT l.partner_id, l.partner_user_id, l.fan_id, l.scope, COALESCE(f.home_key, l.partner_user_id),
			f.time_zone, f.home_lat, f.home_lon
		FROM linked_accounts l JOIN fans f ON f.id = l.fan_id`)
	if err != nil {
		return fmt.Errorf("reading linked accounts: %w", err)
	}
	var partner, user, home, tz string
	var fan uuid.UUID
	var scope []string
	var lat, lon *float64
	var accounts []accountSlot
	zones := map[string]*time.Location{}
	// Consents come in a handful of scopes: accounts share one copy of each.
	scopes := map[string]*fans.Scope{}
	if _, err := pgx.ForEachRow(rows, []any{&partner, &user, &fan, &scope, &home, &tz, &lat, &lon}, func() error {
		a := accountSlot{key: snap.key(partner, user), fan: fan}
		if home != user {
			a.home = home
		}
		loc, ok := zones[tz]
		if !ok {
			var err error
			if loc, err = time.LoadLocation(tz); err != nil {
				loc = time.UTC // validated on the way in; an unknown zone judges as UTC
			}
			zones[tz] = loc
		}
		if loc != time.UTC || (lat != nil && lon != nil) {
			a.locale = &pipeline.Locale{TimeZone: loc}
			if lat != nil && lon != nil {
				a.locale.HasHome, a.locale.HomeLat, a.locale.HomeLon = true, *lat, *lon
			}
		}
		if scope != nil {
			k := strings.Join(scope, "\x00")
			if a.scope = scopes[k]; a.scope == nil {
				sc := make(fans.Scope, len(scope))
				for i, t := range scope {
					sc[i] = events.Type(t)
				}
				a.scope = &sc
				scopes[k] = a.scope
			}
		}
		accounts = append(accounts, a)
		return nil
	}); err != nil {
		return fmt.Errorf("reading linked accounts: %w", err)
	}
	snap.accounts = newAccountTable(accounts)
	if snap.erased, err = d.store.erasedFans(ctx); err != nil {
		return err
	}
	if snap.recompute, err = d.store.latestRecompute(ctx); err != nil {
		return err
	}
	if prev := d.snap.Load(); prev != nil {
		snap.erasedVersion = prev.erasedVersion
		if !sameSet(prev.erased, snap.erased) {
			snap.erasedVersion++
		}
	}
	d.snap.Store(snap)
	return nil
}

func sameSet(a, b map[uuid.UUID]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func (s *Store) erasedFans(ctx context.Context) (map[uuid.UUID]struct{}, error) {
	rows, err := s.pool.Query(ctx, `SELECT fan_id FROM erased_fans`)
	if err != nil {
		return nil, fmt.Errorf("reading erased fans: %w", err)
	}
	out := map[uuid.UUID]struct{}{}
	var fan uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&fan}, func() error {
		out[fan] = struct{}{}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading erased fans: %w", err)
	}
	return out, nil
}

// Erased returns the erased fans and a version that changes when they do, so a
// partition owner can tell when to look again.
func (d *Directory) Erased() (map[uuid.UUID]struct{}, uint64) {
	s := d.snap.Load()
	return s.erased, s.erasedVersion
}

// Listen reloads the directory, and calls onChange, whenever partners, linked
// accounts, consent, rules or erasures change in the database, so a withdrawal
// takes effect within milliseconds on every replica. It returns when ctx ends.
func (d *Directory) Listen(ctx context.Context, onChange func(ctx context.Context)) error {
	for ctx.Err() == nil {
		err := d.listen(ctx, onChange)
		if ctx.Err() != nil {
			return nil
		}
		d.store.logger.WarnContext(ctx, "listening for directory changes; reconnecting", slog.Any("error", err))
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (d *Directory) listen(ctx context.Context, onChange func(ctx context.Context)) error {
	pooled, err := d.store.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	// The connection carries a LISTEN: it must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN crescendo_directory"); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// Changes made before LISTEN took effect would otherwise be missed.
	if err := d.Refresh(ctx); err != nil {
		return err
	}
	onChange(ctx)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("waiting for notification: %w", err)
		}
		if err := d.Refresh(ctx); err != nil {
			return err
		}
		onChange(ctx)
	}
}

// KnownPartner reports whether id is a registered partner.
func (d *Directory) KnownPartner(id string) bool {
	_, ok := d.snap.Load().partners[id]
	return ok
}

// Account returns the fan a partner account is linked to, the scope of its
// consent and the fan's home key.
func (d *Directory) Account(partner, userID string) (pipeline.Account, bool) {
	snap := d.snap.Load()
	a, ok := snap.accounts.get(snap.key(partner, userID))
	if !ok {
		return pipeline.Account{}, false
	}
	acct := pipeline.Account{Fan: a.fan, Home: cmp.Or(a.home, userID), Locale: a.locale}
	if a.scope != nil {
		acct.Scope = *a.scope
	}
	return acct, true
}

// HashKey returns the stored form of an API key.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// PartnerByKey returns the partner an API key belongs to.
func (s *Store) PartnerByKey(ctx context.Context, key string) (string, bool, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM partners WHERE api_key_hash = $1`, HashKey(key)).Scan(&id)
	if err == pgx.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("looking up partner key: %w", err)
	}
	return id, true, nil
}
