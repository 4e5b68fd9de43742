package store_test

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// problemFields returns the field of each problem in an *InvalidError, or
// fails the test when err is not one.
func problemFields(t *testing.T, err error) []string {
	t.Helper()
	var inv *store.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("want *store.InvalidError, got %v", err)
	}
	var fields []string
	for _, line := range strings.Split(inv.Error(), "\n") {
		field, _, _ := strings.Cut(line, ": ")
		fields = append(fields, field)
	}
	return fields
}

func TestTokensAuthenticateUntilRevoked(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.CreateOrganization(ctx, "acme", "Acme Records"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrganization(ctx, "acme", "Again"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second acme: %v, want ErrExists", err)
	}
	if got := problemFields(t, must2(s.CreateOrganization(ctx, "Bad/Id", " "))); !slices.Equal(got, []string{"id", "name"}) {
		t.Fatalf("invalid organization problems: %v", got)
	}
	if _, err := s.CreateOrganization(ctx, "other", "Other"); err != nil {
		t.Fatal(err)
	}

	tok, secret, err := s.CreateToken(ctx, "acme", store.RoleMarketer, "console")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, store.TokenPrefix) || len(secret) != len(store.TokenPrefix)+43 {
		t.Fatalf("token %q: want cr_ and 43 base64url characters", secret)
	}
	_, second, err := s.CreateToken(ctx, "acme", store.RoleMarketer, "console")
	if err != nil || second == secret {
		t.Fatalf("second token %q (%v) repeats the first", second, err)
	}
	// Only the hash is stored.
	var hash []byte
	var found int
	if err := s.Pool().QueryRow(ctx, `SELECT token_hash FROM api_tokens WHERE id = $1`, tok.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(secret)); string(hash) != string(sum[:]) {
		t.Fatal("token_hash is not the token's SHA-256")
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM api_tokens t WHERE strpos(t::text, $1) > 0`, secret[3:]).Scan(&found); err != nil || found != 0 {
		t.Fatalf("token stored in clear in %d rows (%v)", found, err)
	}

	p, ok, err := s.Authenticate(ctx, secret)
	if err != nil || !ok || p != (store.Principal{TokenID: tok.ID, OrgID: "acme", Role: store.RoleMarketer}) {
		t.Fatalf("Authenticate = %+v %v %v", p, ok, err)
	}
	list, err := s.Tokens(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[0].LastUsedAt == nil || list[1].LastUsedAt != nil {
		t.Fatalf("Tokens = %+v %v; want both, the used one with last_used_at", list, err)
	}
	for _, bad := range []string{"", "cr_", secret + "x", secret[3:], strings.ToUpper(secret)} {
		if _, ok, err := s.Authenticate(ctx, bad); ok || err != nil {
			t.Fatalf("Authenticate(%q) = %v %v, want false", bad, ok, err)
		}
	}

	if err := s.RevokeToken(ctx, "other", tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization revoked the token: %v", err)
	}
	if _, ok, _ := s.Authenticate(ctx, secret); !ok {
		t.Fatal("token stopped working after another organization's revocation attempt")
	}
	must(t, s.RevokeToken(ctx, "acme", tok.ID))
	must(t, s.RevokeToken(ctx, "acme", tok.ID)) // again: nothing changes
	if _, ok, err := s.Authenticate(ctx, secret); ok || err != nil {
		t.Fatalf("revoked token authenticates: %v %v", ok, err)
	}
	if _, ok, _ := s.Authenticate(ctx, second); !ok {
		t.Fatal("revoking one token revoked another")
	}
	if err := s.RevokeToken(ctx, "acme", uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown token: %v", err)
	}

	if _, _, err := s.CreateToken(ctx, "nobody", store.RoleViewer, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token for an unknown organization: %v", err)
	}
	_, _, err = s.CreateToken(ctx, "acme", "owner", "")
	if got := problemFields(t, err); !slices.Equal(got, []string{"role", "name"}) {
		t.Fatalf("invalid token problems: %v", got)
	}
}

func must2[T any](_ T, err error) error { return err }

func TestProfilesAndPerformersAreScopedToTheirOrganization(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, o := range []string{"a", "b"} {
		if _, err := s.CreateOrganization(ctx, o, strings.ToUpper(o)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"pa", "pb", "free"} {
		must(t, s.PutPerformer(ctx, p, "Performer "+p))
	}
	must(t, s.AssignPerformer(ctx, "a", "pa"))
	must(t, s.AssignPerformer(ctx, "b", "pb"))
	if err := s.AssignPerformer(ctx, "nobody", "pa"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("assigning to an unknown organization: %v", err)
	}
	if err := s.AssignPerformer(ctx, "a", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("assigning an unknown performer: %v", err)
	}

	gold := scoring.DefaultProfile()
	gold.ID = "gold"
	gold.Weights.Follow = 5
	for i, want := range []bool{true, false} {
		created, err := s.PutOrgProfile(ctx, "a", gold)
		if err != nil || created != want {
			t.Fatalf("put %d: created %v (%v), want %v", i, created, err, want)
		}
	}
	// b has a namespace of its own: the same name is another profile.
	bGold := gold
	bGold.Weights.Follow = 9
	if created, err := s.PutOrgProfile(ctx, "b", bGold); err != nil || !created {
		t.Fatalf("b's gold: created %v (%v)", created, err)
	}
	if got, err := s.OrgProfileByID(ctx, "a", "gold"); err != nil || got.Profile.Weights.Follow != 5 || got.Profile.ID != "gold" || got.BuiltIn {
		t.Fatalf("a sees gold as %+v (%v)", got, err)
	}
	secret := gold
	secret.ID = "secret"
	must(t, must2(s.PutOrgProfile(ctx, "a", secret)))
	if _, err := s.OrgProfileByID(ctx, "b", "secret"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b reads a's profile: %v", err)
	}
	if _, err := s.OrgProfileByID(ctx, "b", "a/secret"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b reads a's profile by its stored key: %v", err)
	}
	if err := s.DeleteOrgProfile(ctx, "b", "secret"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b deletes a's profile: %v", err)
	}

	list, err := s.OrgProfiles(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.Profile.ID)
	}
	if !slices.Equal(ids, []string{"default", "gold", "secret"}) || !list[0].BuiltIn || list[1].BuiltIn {
		t.Fatalf("a's profiles: %v", ids)
	}
	if def, err := s.OrgProfileByID(ctx, "b", "default"); err != nil || !def.BuiltIn {
		t.Fatalf("default profile: %+v %v", def, err)
	}
	def := scoring.DefaultProfile()
	if _, err := s.PutOrgProfile(ctx, "a", def); !errors.Is(err, store.ErrBuiltIn) {
		t.Fatalf("changing the built-in default: %v", err)
	}
	if err := s.DeleteOrgProfile(ctx, "a", "default"); !errors.Is(err, store.ErrBuiltIn) {
		t.Fatalf("deleting the built-in default: %v", err)
	}
	bad := gold
	bad.ID = "../x"
	bad.Weights.Affinity = -1
	bad.AffinityWords = nil
	if got := problemFields(t, must2(s.PutOrgProfile(ctx, "a", bad))); !slices.Equal(got, []string{"id", "weights.affinity", "affinity_words"}) {
		t.Fatalf("invalid profile problems: %v", got)
	}

	// Performers: only the organization's own.
	for _, p := range []string{"pb", "free", "nobody"} {
		if _, err := s.OrgPerformerScoring(ctx, "a", p); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a reads %s: %v", p, err)
		}
		if err := s.SetOrgPerformerScoring(ctx, "a", p, store.PerformerScoring{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a changes %s: %v", p, err)
		}
	}
	got, err := s.OrgPerformerScoring(ctx, "a", "pa")
	if err != nil || got.ProfileID != "default" || got.Name != "Performer pa" {
		t.Fatalf("pa before: %+v %v", got, err)
	}
	must(t, s.SetOrgPerformerScoring(ctx, "a", "pa", store.PerformerScoring{Aliases: []string{"P.A."}, Charities: []string{"c1"}, ProfileID: "gold"}))
	got, err = s.OrgPerformerScoring(ctx, "a", "pa")
	if err != nil || got.ProfileID != "gold" || !slices.Equal(got.Aliases, []string{"P.A."}) || !slices.Equal(got.Charities, []string{"c1"}) {
		t.Fatalf("pa after: %+v %v", got, err)
	}
	err = s.SetOrgPerformerScoring(ctx, "a", "pa", store.PerformerScoring{Aliases: []string{"ok", "  "}, Charities: []string{"c1", "c1"}, ProfileID: "b/gold"})
	if got := problemFields(t, err); !slices.Equal(got, []string{"aliases[1]", "charities[1]", "profile_id"}) {
		t.Fatalf("invalid performer scoring problems: %v", got)
	}

	// What the scorer sees: pa scored with a's gold, under its stored key.
	cfg, err := s.ScoringConfig(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	scorer, err := scoring.NewScorer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if prof, ok := scorer.Profile("pa"); !ok || prof.ID != "a/gold" || prof.Weights.Follow != 5 {
		t.Fatalf("scorer profile of pa: %s %v", prof.ID, prof.Weights)
	}

	if err := s.DeleteOrgProfile(ctx, "a", "gold"); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "pa") {
		t.Fatalf("deleting a profile in use: %v", err)
	}
	// Moving pa to b drops a's profile: b never scores with a's.
	must(t, s.AssignPerformer(ctx, "b", "pa"))
	if _, err := s.OrgPerformerScoring(ctx, "a", "pa"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a still reads pa after it moved: %v", err)
	}
	if got, err := s.OrgPerformerScoring(ctx, "b", "pa"); err != nil || got.ProfileID != "default" {
		t.Fatalf("pa at b: %+v %v", got, err)
	}
	must(t, s.DeleteOrgProfile(ctx, "a", "gold"))
	if _, err := s.OrgProfileByID(ctx, "a", "gold"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted profile still there: %v", err)
	}
	if got, err := s.OrgProfileByID(ctx, "b", "gold"); err != nil || got.Profile.Weights.Follow != 9 {
		t.Fatalf("deleting a's gold touched b's: %+v %v", got, err)
	}
}
