package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crescendo-hq/crescendo/scoring"
)

// Role is what an API token may do within its organization.
type Role string

// The roles a token can carry, from most to least trusted.
const (
	// RoleAdmin may do what a marketer does and manage its organization's tokens.
	RoleAdmin Role = "admin"
	// RoleMarketer may read and change its organization's profiles and performers' scoring.
	RoleMarketer Role = "marketer"
	// RoleViewer may only read.
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool {
	return r == RoleAdmin || r == RoleMarketer || r == RoleViewer
}

// roleRank orders roles: each may do what the ones below it may.
var roleRank = map[Role]int{RoleViewer: 1, RoleMarketer: 2, RoleAdmin: 3}

// AtLeast reports whether r may do what least may; an unknown role may do nothing.
func (r Role) AtLeast(least Role) bool {
	return roleRank[r] > 0 && roleRank[r] >= roleRank[least]
}

// TokenPrefix starts every marketer API token, so that a leaked one is easy to
// recognize (secret scanners, logs) and tell from a partner key.
const TokenPrefix = "cr_"

var (
	// ErrExists is returned when creating something whose id is taken.
	ErrExists = errors.New("already exists")
	// ErrInUse is returned when deleting something others still refer to.
	ErrInUse = errors.New("in use by performers")
	// ErrBuiltIn is returned when an organization tries to change or delete a
	// built-in profile, which every organization shares.
	ErrBuiltIn = errors.New("built-in profile")
)

// InvalidError is a request the store refuses because of what it asks for:
// Err joins every problem, each written "field: reason".
type InvalidError struct{ Err error }

// Error lists the problems, one a line.
func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap returns the joined problems.
func (e *InvalidError) Unwrap() error { return e.Err }

// invalid returns an *InvalidError of the problems, or nil when there are none.
func invalid(problems ...error) error {
	if err := errors.Join(problems...); err != nil {
		return &InvalidError{Err: err}
	}
	return nil
}

var (
	orgIDPattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	profileNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Organization is a marketer organization: a label, promoter or performer's
// team. It owns performers and scoring profiles.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateOrganization creates an organization. Its id is lowercase letters,
// digits, '-' and '_'; it is ErrExists when taken.
func (s *Store) CreateOrganization(ctx context.Context, id, name string) (Organization, error) {
	var problems []error
	if !orgIDPattern.MatchString(id) {
		problems = append(problems, fmt.Errorf("id: must be 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit; got %q", id))
	}
	if strings.TrimSpace(name) == "" {
		problems = append(problems, errors.New("name: required"))
	}
	if err := invalid(problems...); err != nil {
		return Organization{}, err
	}
	o := Organization{ID: id, Name: name}
	err := s.pool.QueryRow(ctx, `INSERT INTO organizations (id, name) VALUES ($1, $2)
		ON CONFLICT (id) DO NOTHING RETURNING created_at`, id, name).Scan(&o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Organization{}, fmt.Errorf("organization %s: %w", id, ErrExists)
	}
	if err != nil {
		return Organization{}, fmt.Errorf("creating organization %s: %w", id, err)
	}
	return o, nil
}

// Token is an API token's record; the token itself is shown once, by CreateToken.
type Token struct {
	ID         uuid.UUID  `json:"id"`
	OrgID      string     `json:"org_id"`
	Role       Role       `json:"role"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// CreateToken makes a token for an organization with a role and returns its
// record and the token, which is not kept: only its SHA-256 is stored. The
// organization must exist (ErrNotFound otherwise).
func (s *Store) CreateToken(ctx context.Context, orgID string, role Role, name string) (Token, string, error) {
	var problems []error
	if !role.Valid() {
		problems = append(problems, fmt.Errorf("role: must be %q, %q or %q; got %q", RoleAdmin, RoleMarketer, RoleViewer, role))
	}
	if strings.TrimSpace(name) == "" {
		problems = append(problems, errors.New("name: required (what the token is for)"))
	} else if len(name) > 200 {
		problems = append(problems, errors.New("name: at most 200 bytes"))
	}
	if err := invalid(problems...); err != nil {
		return Token{}, "", err
	}
	value, err := newSecret(TokenPrefix)
	if err != nil {
		return Token{}, "", err
	}
	t := Token{ID: uuid.New(), OrgID: orgID, Role: role, Name: name}
	err = s.pool.QueryRow(ctx, `INSERT INTO api_tokens (id, org_id, role, name, token_hash) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at`, t.ID, orgID, string(role), name, HashKey(value)).Scan(&t.CreatedAt)
	if isForeignKeyViolation(err) {
		return Token{}, "", fmt.Errorf("organization %s: %w", orgID, ErrNotFound)
	}
	if err != nil {
		return Token{}, "", fmt.Errorf("creating token: %w", err)
	}
	return t, value, nil
}

// RevokeToken revokes one of an organization's tokens; revoking it again
// changes nothing. A token of another organization is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, orgID string, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now())
		WHERE id = $1 AND org_id = $2`, id, orgID)
	if err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return nil
}

// Tokens lists an organization's tokens, revoked ones included, oldest first.
func (s *Store) Tokens(ctx context.Context, orgID string) ([]Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, role, name, created_at, last_used_at, revoked_at
		FROM api_tokens WHERE org_id = $1 ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Token])
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	return out, nil
}

// Principal is who a token speaks for.
type Principal struct {
	TokenID uuid.UUID
	OrgID   string
	Role    Role
}

// Authenticate returns the principal of a token; ok is false for an unknown
// or revoked token. The token is looked up by its hash, so no comparison of
// secrets takes time that depends on how much of one matched.
func (s *Store) Authenticate(ctx context.Context, token string) (p Principal, ok bool, err error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return Principal{}, false, nil
	}
	var role string
	err = s.pool.QueryRow(ctx, `WITH t AS (
			SELECT id, org_id, role, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL
		), touched AS (
			-- At most one write a minute per token, not one per request.
			UPDATE api_tokens a SET last_used_at = now() FROM t
			WHERE a.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
		)
		SELECT id, org_id, role FROM t`, HashKey(token)).Scan(&p.TokenID, &p.OrgID, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, false, fmt.Errorf("authenticating token: %w", err)
	}
	p.Role = Role(role)
	return p, true, nil
}

// AssignPerformer makes an organization the owner of a performer. A profile
// the performer used that belongs to another organization is dropped for the
// default, so no organization scores with another's profile.
func (s *Store) AssignPerformer(ctx context.Context, orgID, performerID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)`, orgID).Scan(&exists); err != nil {
			return fmt.Errorf("reading organization: %w", err)
		}
		if !exists {
			return fmt.Errorf("organization %s: %w", orgID, ErrNotFound)
		}
		tag, err := tx.Exec(ctx, `UPDATE performers p SET org_id = $1,
				profile_id = CASE WHEN EXISTS (SELECT 1 FROM scoring_profiles sp
					WHERE sp.id = p.profile_id AND sp.org_id <> $1) THEN NULL ELSE p.profile_id END
			WHERE p.id = $2`, orgID, performerID)
		if err != nil {
			return fmt.Errorf("assigning performer: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("performer %s: %w", performerID, ErrNotFound)
		}
		return nil
	})
}

// OrgProfile is a scoring profile as an organization sees it: its ID is the
// name the organization uses, without the prefix it is stored under.
type OrgProfile struct {
	Profile scoring.Profile `json:"profile"`
	// BuiltIn profiles are shared by every organization and changed by none.
	BuiltIn   bool      `json:"built_in"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// profileKey is the id an organization's profile is stored and scored under.
func profileKey(orgID, name string) string { return orgID + "/" + name }

// defaultProfileID is the built-in profile every performer naming none uses,
// whether or not a row overrides it.
var defaultProfileID = scoring.DefaultProfile().ID

// OrgProfiles lists the profiles an organization can see: the built-in ones
// first, then its own, each by id.
func (s *Store) OrgProfiles(ctx context.Context, orgID string) ([]OrgProfile, error) {
	rows, err := s.pool.Query(ctx, `SELECT body, org_id IS NULL, updated_at FROM scoring_profiles
		WHERE org_id IS NULL OR org_id = $1 ORDER BY org_id NULLS FIRST, id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	var (
		out    []OrgProfile
		body   []byte
		p      OrgProfile
		stored bool // whether a row overrides the built-in default
		prefix = profileKey(orgID, "")
	)
	if _, err := pgx.ForEachRow(rows, []any{&body, &p.BuiltIn, &p.UpdatedAt}, func() error {
		q := p
		if err := json.Unmarshal(body, &q.Profile); err != nil {
			return fmt.Errorf("decoding profile: %w", err)
		}
		if q.BuiltIn {
			stored = stored || q.Profile.ID == defaultProfileID
		} else {
			q.Profile.ID = strings.TrimPrefix(q.Profile.ID, prefix)
		}
		out = append(out, q)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	if !stored {
		out = append([]OrgProfile{{Profile: scoring.DefaultProfile(), BuiltIn: true}}, out...)
	}
	return out, nil
}

// OrgProfileByID returns a profile an organization can see by the name it
// uses: its own first, then a built-in one. Anything else is ErrNotFound.
func (s *Store) OrgProfileByID(ctx context.Context, orgID, name string) (OrgProfile, error) {
	var p OrgProfile
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body, org_id IS NULL, updated_at FROM scoring_profiles
		WHERE (org_id = $1 AND id = $2) OR (org_id IS NULL AND id = $3)
		ORDER BY org_id NULLS LAST LIMIT 1`, orgID, profileKey(orgID, name), name).Scan(&body, &p.BuiltIn, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		if name == defaultProfileID {
			return OrgProfile{Profile: scoring.DefaultProfile(), BuiltIn: true}, nil
		}
		return OrgProfile{}, fmt.Errorf("profile %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return OrgProfile{}, fmt.Errorf("reading profile: %w", err)
	}
	if err := json.Unmarshal(body, &p.Profile); err != nil {
		return OrgProfile{}, fmt.Errorf("decoding profile: %w", err)
	}
	p.Profile.ID = name
	return p, nil
}

// isBuiltInProfile reports whether name is a built-in profile's id.
func (s *Store) isBuiltInProfile(ctx context.Context, name string) (bool, error) {
	if name == defaultProfileID {
		return true, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM scoring_profiles WHERE org_id IS NULL AND id = $1)`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("reading profile: %w", err)
	}
	return exists, nil
}

// PutOrgProfile creates or replaces one of an organization's profiles, named
// p.ID, and reports whether it created it. An invalid profile is an
// *InvalidError listing every problem; a built-in profile's name is ErrBuiltIn.
func (s *Store) PutOrgProfile(ctx context.Context, orgID string, p scoring.Profile) (created bool, err error) {
	name := p.ID
	var problems []error
	if !profileNamePattern.MatchString(name) {
		problems = append(problems, fmt.Errorf("id: must be 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit; got %q", name))
	}
	if err := p.Validate(); err != nil {
		problems = append(problems, err)
	}
	if err := invalid(problems...); err != nil {
		return false, err
	}
	builtIn, err := s.isBuiltInProfile(ctx, name)
	if err != nil {
		return false, err
	}
	if builtIn {
		return false, fmt.Errorf("profile %s: %w", name, ErrBuiltIn)
	}
	p.ID = profileKey(orgID, name)
	body, err := json.Marshal(p)
	if err != nil {
		return false, fmt.Errorf("encoding profile: %w", err)
	}
	// The WHERE keeps the update to the organization's own row: a built-in
	// profile stored under the same key answers no row.
	err = s.pool.QueryRow(ctx, `INSERT INTO scoring_profiles (id, org_id, body) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = now()
		WHERE scoring_profiles.org_id = excluded.org_id
		RETURNING xmax = 0`, p.ID, orgID, body).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("profile %s: %w", name, ErrBuiltIn)
	}
	if err != nil {
		return false, fmt.Errorf("saving profile %s: %w", name, err)
	}
	return created, nil
}

// DeleteOrgProfile deletes one of an organization's profiles. It is ErrInUse
// while a performer is scored with it, ErrBuiltIn for a built-in profile and
// ErrNotFound for anything else the organization does not own.
func (s *Store) DeleteOrgProfile(ctx context.Context, orgID, name string) error {
	key := profileKey(orgID, name)
	tag, err := s.pool.Exec(ctx, `DELETE FROM scoring_profiles WHERE id = $1 AND org_id = $2`, key, orgID)
	if isForeignKeyViolation(err) {
		var users []string
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(array_agg(id ORDER BY id), '{}') FROM performers
			WHERE profile_id = $1 AND org_id = $2`, key, orgID).Scan(&users); err != nil {
			return fmt.Errorf("reading performers of profile: %w", err)
		}
		return fmt.Errorf("profile %s: %w: %s", name, ErrInUse, strings.Join(users, ", "))
	}
	if err != nil {
		return fmt.Errorf("deleting profile %s: %w", name, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	builtIn, err := s.isBuiltInProfile(ctx, name)
	if err != nil {
		return err
	}
	if builtIn {
		return fmt.Errorf("profile %s: %w", name, ErrBuiltIn)
	}
	return fmt.Errorf("profile %s: %w", name, ErrNotFound)
}

// OrgPerformer is a performer's scoring settings as its organization sees them.
type OrgPerformer struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Aliases   []string `json:"aliases"`
	Charities []string `json:"charities"`
	// ProfileID is the name of the profile the performer is scored with, as
	// the organization knows it; "default" when it names none.
	ProfileID string `json:"profile_id"`
}

// OrgPerformerScoring returns the scoring settings of one of an
// organization's performers; any other performer is ErrNotFound.
func (s *Store) OrgPerformerScoring(ctx context.Context, orgID, performerID string) (OrgPerformer, error) {
	p := OrgPerformer{ID: performerID}
	var profileID, profileOrg *string
	err := s.pool.QueryRow(ctx, `SELECT p.name, p.aliases, p.charities, p.profile_id, sp.org_id
		FROM performers p LEFT JOIN scoring_profiles sp ON sp.id = p.profile_id
		WHERE p.id = $1 AND p.org_id = $2`, performerID, orgID).Scan(&p.Name, &p.Aliases, &p.Charities, &profileID, &profileOrg)
	if errors.Is(err, pgx.ErrNoRows) {
		return OrgPerformer{}, fmt.Errorf("performer %s: %w", performerID, ErrNotFound)
	}
	if err != nil {
		return OrgPerformer{}, fmt.Errorf("reading performer scoring: %w", err)
	}
	switch {
	case profileID == nil:
		p.ProfileID = defaultProfileID
	case profileOrg != nil && *profileOrg == orgID:
		p.ProfileID = strings.TrimPrefix(*profileID, profileKey(orgID, ""))
	default:
		p.ProfileID = *profileID
	}
	return p, nil
}

// SetOrgPerformerScoring sets the aliases, listed charities and profile of one
// of an organization's performers. ps.ProfileID is a name the organization
// sees (its own profile or a built-in one; "" for the default). Another
// organization's performer is ErrNotFound; invalid settings are an
// *InvalidError listing every problem.
func (s *Store) SetOrgPerformerScoring(ctx context.Context, orgID, performerID string, ps PerformerScoring) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM performers WHERE id = $1 AND org_id = $2 FOR UPDATE`, performerID, orgID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("performer %s: %w", performerID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading performer: %w", err)
		}
		problems := ps.problems(performerID)
		var profile *string // NULL: the default
		if ps.ProfileID != "" {
			var key string
			err := tx.QueryRow(ctx, `SELECT id FROM scoring_profiles
				WHERE (org_id = $1 AND id = $2) OR (org_id IS NULL AND id = $3)
				ORDER BY org_id NULLS LAST LIMIT 1 FOR SHARE`, orgID, profileKey(orgID, ps.ProfileID), ps.ProfileID).Scan(&key)
			switch {
			case errors.Is(err, pgx.ErrNoRows) && ps.ProfileID == defaultProfileID:
			case errors.Is(err, pgx.ErrNoRows):
				problems = append(problems, fmt.Errorf("profile_id: no profile %q", ps.ProfileID))
			case err != nil:
				return fmt.Errorf("reading profile: %w", err)
			default:
				profile = &key
			}
		}
		if err := invalid(problems...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE performers SET aliases = $3, charities = $4, profile_id = $5
			WHERE id = $1 AND org_id = $2`, performerID, orgID, nonNil(ps.Aliases), nonNil(ps.Charities), profile); err != nil {
			return fmt.Errorf("saving performer scoring: %w", err)
		}
		return nil
	})
}

// problems validates aliases and charities as the scorer will, so that one
// organization's settings can never keep the scorer from building for all.
func (ps PerformerScoring) problems(performerID string) []error {
	err := scoring.Performer{ID: performerID, Names: ps.Aliases, Charities: ps.Charities}.Validate()
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []error
	for _, e := range list {
		msg := e.Error()
		switch {
		case strings.HasPrefix(msg, "names:"):
			// Aliases add to the performer's name; none is fine.
		case strings.HasPrefix(msg, "names["):
			out = append(out, errors.New("aliases"+strings.TrimPrefix(msg, "names")))
		default:
			out = append(out, e)
		}
	}
	return out
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// isCheckViolation reports a CHECK constraint refusing a row.
func isCheckViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// newSecret returns prefix and 32 random bytes, base64url: a bearer credential.
func newSecret(prefix string) (string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("generating credential: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(secret), nil
}
