package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

// twoLabels stores organizations a and b, each owning performer p<org> with
// show s<org>, and an unowned performer loose with show sl.
func twoLabels(t *testing.T) *store.Store {
	t.Helper()
	s := open(t)
	ctx := t.Context()
	starts := time.Now().Add(30 * 24 * time.Hour)
	for _, org := range []string{"a", "b", "l"} {
		performer := "p" + org
		if org == "l" {
			performer = "loose"
		} else {
			must(t, must2(s.CreateOrganization(ctx, org, "Org "+org)))
		}
		must(t, s.PutPerformer(ctx, performer, performer))
		must(t, s.PutShow(ctx, store.Show{ID: "s" + org, PerformerID: performer, Name: "Show", StartsAt: starts, VenueName: "V"}))
		if org != "l" {
			must(t, s.AssignPerformer(ctx, org, performer))
		}
	}
	return s
}

func orgRule(id, performer, show string, threshold float64) offers.Rule {
	r := rule(threshold)
	r.ID, r.PerformerID, r.ShowID = id, performer, show
	return r
}

func TestRulesForOrgAreVersionedAndScopedToTheOrganization(t *testing.T) {
	s := twoLabels(t)
	ctx := t.Context()

	put, err := s.PutRuleForOrg(ctx, "a", orgRule("ra", "pa", "sa", 10))
	if err != nil || put != (store.RulePut{Version: 1, Created: true, Changed: true}) {
		t.Fatalf("creating: %+v %v", put, err)
	}
	if put, err = s.PutRuleForOrg(ctx, "a", orgRule("ra", "pa", "sa", 10)); err != nil || put != (store.RulePut{Version: 1}) {
		t.Fatalf("the same body again: %+v %v, want version 1 unchanged", put, err)
	}
	if put, err = s.PutRuleForOrg(ctx, "a", orgRule("ra", "pa", "sa", 12)); err != nil || put != (store.RulePut{Version: 2, Changed: true}) {
		t.Fatalf("changing: %+v %v, want version 2", put, err)
	}
	got, err := s.RuleForOrg(ctx, "a", "ra")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Rule.Version != 2 || got.Rule.Tiers[0].Threshold != 12 || !got.Active ||
		len(got.Versions) != 2 || got.Versions[0].Version != 2 || got.Versions[1].Version != 1 {
		t.Fatalf("rule ra: %+v", got)
	}
	list, err := s.RulesForOrg(ctx, "a")
	if err != nil || len(list) != 1 || list[0].Rule.ID != "ra" || list[0].Versions != nil {
		t.Fatalf("a's rules: %+v %v", list, err)
	}

	// b sees nothing of a's rule and cannot take its id, with its own performer or a's.
	if list, err := s.RulesForOrg(ctx, "b"); err != nil || len(list) != 0 {
		t.Fatalf("b's rules: %+v %v", list, err)
	}
	if _, err := s.RuleForOrg(ctx, "b", "ra"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b reading ra: %v", err)
	}
	if _, err := s.PutRuleForOrg(ctx, "b", orgRule("ra", "pb", "sb", 10)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b overwriting ra: %v", err)
	}
	if _, err := s.SetRuleActive(ctx, "b", "ra", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b deactivating ra: %v", err)
	}
	// A performer or show of another organization reads as one that does not exist.
	theirs := problemFields(t, must2(s.PutRuleForOrg(ctx, "b", orgRule("rb", "pa", "sa", 10))))
	none := problemFields(t, must2(s.PutRuleForOrg(ctx, "b", orgRule("rb", "nobody", "sa", 10))))
	if !slices.Equal(theirs, []string{"performer_id"}) || !slices.Equal(none, theirs) {
		t.Fatalf("b naming a's performer: %v; naming none: %v", theirs, none)
	}
	if err := s.CheckRuleForOrg(ctx, "b", orgRule("rb", "pb", "sa", 10)); err == nil ||
		err.Error() != `show_id: no show "sa" of performer "pb"` {
		t.Fatalf("b naming a's show: %v", err)
	}
	// Rules of performers no organization owns are no one's to change.
	if _, err := s.PutRule(ctx, orgRule("rl", "loose", "sl", 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRuleForOrg(ctx, "a", orgRule("rl", "pa", "sa", 10)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a taking an unowned rule's id: %v", err)
	}

	if changed, err := s.SetRuleActive(ctx, "a", "ra", false); err != nil || !changed {
		t.Fatalf("deactivating: %v %v", changed, err)
	}
	if changed, err := s.SetRuleActive(ctx, "a", "ra", false); err != nil || changed {
		t.Fatalf("deactivating again: %v %v, want no change", changed, err)
	}
	if active, err := s.Rules(ctx, true); err != nil || slices.ContainsFunc(active, func(r offers.Rule) bool { return r.ID == "ra" }) {
		t.Fatalf("active rules after deactivating ra: %v %v", active, err)
	}
	if got, err := s.RuleForOrg(ctx, "a", "ra"); err != nil || got.Active || got.Version != 2 {
		t.Fatalf("ra after deactivating: %+v %v, want inactive at version 2", got, err)
	}
}

// The database itself keeps a rule in its organization: a write that would
// move it to another organization's performer fails, whoever makes it.
func TestARuleNeverMovesToAnotherOrganization(t *testing.T) {
	s := twoLabels(t)
	ctx := t.Context()
	putRule(t, s, orgRule("ra", "pa", "sa", 10))
	_, err := s.PutRule(ctx, orgRule("ra", "pb", "sb", 10))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "CR001" {
		t.Fatalf("moving ra to b's performer: %v, want SQLSTATE CR001", err)
	}
	// Within the organization a rule may change performers.
	must(t, s.PutPerformer(ctx, "pa2", "Second"))
	must(t, s.AssignPerformer(ctx, "a", "pa2"))
	must(t, s.PutShow(ctx, store.Show{ID: "sa2", PerformerID: "pa2", Name: "Show", StartsAt: time.Now().Add(time.Hour), VenueName: "V"}))
	if put, err := s.PutRuleForOrg(ctx, "a", orgRule("ra", "pa2", "sa2", 10)); err != nil || put.Version != 2 {
		t.Fatalf("moving ra to a's other performer: %+v %v", put, err)
	}
}

// A rule names its profile as the organization does, and runs while its
// performer is scored under that profile.
func TestARuleNamesItsOrganizationsProfile(t *testing.T) {
	s := twoLabels(t)
	ctx := t.Context()
	loud := scoring.DefaultProfile()
	loud.ID = "loud"
	for _, org := range []string{"a", "b"} {
		must(t, must2(s.PutOrgProfile(ctx, org, loud)))
	}
	quiet := loud
	quiet.ID = "quiet"
	must(t, must2(s.PutOrgProfile(ctx, "b", quiet)))
	must(t, s.SetOrgPerformerScoring(ctx, "a", "pa", store.PerformerScoring{ProfileID: "loud"}))

	r := orgRule("ra", "pa", "sa", 10)
	r.ProfileID = "quiet" // b's, not a's
	if got := problemFields(t, must2(s.PutRuleForOrg(ctx, "a", r))); !slices.Equal(got, []string{"profile_id"}) {
		t.Fatalf("a naming b's profile: %v", got)
	}
	r.ProfileID = "loud"
	must(t, must2(s.PutRuleForOrg(ctx, "a", r)))
	if got, err := s.RuleForOrg(ctx, "a", "ra"); err != nil || got.Rule.ProfileID != "loud" {
		t.Fatalf("ra's profile: %+v %v", got.Rule, err)
	}
	rules, err := s.NewRuleSet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := rules.ForPerformer("pa"); len(got) != 1 || got[0].Rule.ID != "ra" {
		t.Fatalf("pa's rules: %v; want ra, its profile being pa's", got)
	}
	r.ProfileID = "default"
	must(t, must2(s.PutRuleForOrg(ctx, "a", r)))
	must(t, rules.Refresh(ctx))
	if got := rules.ForPerformer("pa"); len(got) != 0 {
		t.Fatalf("pa's rules: %v; want none, pa being scored under loud", got)
	}
}
