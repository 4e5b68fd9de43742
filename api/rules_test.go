package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/replay"
	"github.com/crescendo-hq/crescendo/store"
)

// ruleDesk is newTenants with the rules served, shows sa (of a's performer
// pa) and sb (of b's pb), and every answer checked against the OpenAPI
// document the server serves.
type ruleDesk struct {
	*tenants
	doc    *openapi3.T
	router routers.Router
}

// dryRuns is a dry runner that answers a fixed report and records its calls.
type dryRuns struct {
	mu    sync.Mutex
	calls []string
}

func (d *dryRuns) DryRun(_ context.Context, ruleID string, since time.Duration) (replay.Report, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, ruleID+" "+since.String())
	until := time.Date(2031, 3, 8, 0, 0, 0, 0, time.UTC)
	return replay.Report{
		RuleID: ruleID, Version: 1, From: until.Add(-since), Until: until, Events: 1200, Offers: 3,
		ByTier: map[int]int{1: 2, 2: 1}, ByChannel: map[string]int{"push": 2, "email": 1},
		NoOffer: map[int]map[string]int{1: {"holdout": 4, "quiet_hours": 1}},
		Sample:  []replay.SampleOffer{{FanID: uuid.New(), Tier: 1, Index: 11.5, EventID: "streamly/e1", At: until.Add(-time.Hour), Channel: "push"}},
		Missed:  []replay.SampleDecision{{FanID: uuid.New(), Tier: 1, Index: 10.2, Reason: "holdout"}},
		Notes:   []string{"fixed report of the test's dry runner"},
	}, nil
}

func (d *dryRuns) made() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func newRuleDesk(t *testing.T, dry api.RuleDryRunner) *ruleDesk {
	t.Helper()
	te := newTenants(t)
	for _, org := range []string{"a", "b"} {
		if err := te.store.PutShow(t.Context(), store.Show{ID: "s" + org, PerformerID: "p" + org, Name: "Show " + org,
			StartsAt: time.Now().AddDate(0, 2, 0), VenueName: "Roundhouse", VenueLat: 51.54, VenueLon: -0.15}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := api.New(api.Config{
		Partners: te.store, Marketers: te.store, Rules: te.store, DryRun: dry, Push: push.NewHub(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	desk := *te
	desk.url = srv.URL
	return checkedDesk(t, &desk)
}

// checkedDesk wraps te's server so that every answer is checked against
// the OpenAPI document it serves.
func checkedDesk(t *testing.T, te *tenants) *ruleDesk {
	t.Helper()
	d := &ruleDesk{tenants: te}
	r := d.expect(t, http.StatusOK, http.MethodGet, "/v1/openapi.yaml", "", nil)
	var err error
	if d.doc, err = openapi3.NewLoader().LoadFromData(r.body); err != nil {
		t.Fatalf("loading the served OpenAPI document: %v", err)
	}
	if err := d.doc.Validate(t.Context()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	if d.router, err = gorillamux.NewRouter(d.doc); err != nil {
		t.Fatal(err)
	}
	return d
}

// call makes a request, wants its status, and checks the answer against the
// operation's documented response for that status.
func (d *ruleDesk) call(t *testing.T, want int, method, path, token string, body any) reply {
	t.Helper()
	r := d.expect(t, want, method, path, token, body)
	req, err := http.NewRequestWithContext(t.Context(), method, d.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the OpenAPI document: %v", method, path, err)
	}
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Fatalf("%s %s: the %d answer %s does not match the OpenAPI document: %v", method, path, r.status, r.body, err)
	}
	return r
}

// ruleBody is a rule using most of what a rule can say, for performer p<org>.
func ruleBody(org string) map[string]any {
	return map[string]any{
		"name": "Presale for the faithful", "performer_id": "p" + org, "show_id": "s" + org,
		"tiers": []any{
			map[string]any{"threshold": 10, "perks": []string{"presale"}},
			map[string]any{"threshold": 25, "perks": []string{"presale", "section:Floor A"}, "inventory": 100},
		},
		"upper_threshold": 500, "condition": "session.minutes >= 10 && fan.friend_count != 0",
		"channels": []string{"push", "email"}, "lifetime": "48h", "per_fan_cap": 2, "cooldown": "24h",
		"budget": 1000, "quiet_hours": map[string]any{"start": "22:00", "end": "08:00", "mode": "hold"},
		"max_distance_km": 150, "holdout": 0.1,
	}
}

// ruleState decodes a rule's state as GET and PUT answer it.
type ruleState struct {
	Rule     map[string]any
	Version  int
	Active   bool
	Changed  *bool
	Versions []struct{ Version int }
}

func (r reply) rule(t *testing.T) ruleState {
	t.Helper()
	var s ruleState
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("rule %s: %v", r.body, err)
	}
	return s
}

func TestRulesAreVersionedActivatedAndListed(t *testing.T) {
	d := newRuleDesk(t, nil)
	mkt := d.a[store.RoleMarketer]

	body := ruleBody("a")
	body["id"] = "ignored" // the path's id wins
	created := d.call(t, http.StatusCreated, "PUT", "/v1/rules/faithful", mkt, body)
	if got := created.rule(t); got.Version != 1 || !got.Active || got.Changed == nil || !*got.Changed ||
		got.Rule["id"] != "faithful" || got.Rule["lifetime"] != "48h0m0s" || got.Rule["holdout"] != 0.1 {
		t.Fatalf("created: %s", created.body)
	}
	if loc := created.header.Get("Location"); loc != "/v1/rules/faithful" {
		t.Fatalf("Location %q", loc)
	}
	// What GET shows, sent back as it is, changes nothing.
	again := d.call(t, http.StatusOK, "GET", "/v1/rules/faithful", d.a[store.RoleViewer], nil).rule(t).Rule
	if got := d.call(t, http.StatusOK, "PUT", "/v1/rules/faithful", mkt, again).rule(t); got.Version != 1 || *got.Changed {
		t.Fatalf("an unchanged PUT: version %d, changed %v; want 1, false", got.Version, *got.Changed)
	}
	body["condition"] = "session.minutes >= 20"
	if got := d.call(t, http.StatusOK, "PUT", "/v1/rules/faithful", mkt, body).rule(t); got.Version != 2 || !*got.Changed {
		t.Fatalf("a changed PUT: version %d, changed %v; want 2, true", got.Version, *got.Changed)
	}
	got := d.call(t, http.StatusOK, "GET", "/v1/rules/faithful", mkt, nil).rule(t)
	if got.Version != 2 || got.Rule["condition"] != "session.minutes >= 20" || len(got.Versions) != 2 ||
		got.Versions[0].Version != 2 || got.Versions[1].Version != 1 {
		t.Fatalf("after two versions: %+v", got)
	}

	if got := d.call(t, http.StatusOK, "POST", "/v1/rules/faithful/deactivate", mkt, nil).rule(t); got.Active || got.Version != 2 {
		t.Fatalf("deactivated: %+v", got)
	}
	list := d.call(t, http.StatusOK, "GET", "/v1/rules", d.a[store.RoleViewer], nil)
	var rules struct{ Rules []ruleState }
	if err := json.Unmarshal(list.body, &rules); err != nil || len(rules.Rules) != 1 || rules.Rules[0].Active || rules.Rules[0].Versions != nil {
		t.Fatalf("list: %s", list.body)
	}
	if got := d.call(t, http.StatusOK, "POST", "/v1/rules/faithful/activate", d.a[store.RoleAdmin], nil).rule(t); !got.Active {
		t.Fatalf("activated: %+v", got)
	}
	// Without a dry runner, a dry run of one's own rule is 501.
	d.call(t, http.StatusNotImplemented, "POST", "/v1/rules/faithful/dry-run", mkt, nil)
}

func TestOneOrganizationCannotReachAnothersRules(t *testing.T) {
	dry := &dryRuns{}
	d := newRuleDesk(t, dry)
	d.call(t, http.StatusCreated, "PUT", "/v1/rules/ra", d.a[store.RoleMarketer], ruleBody("a"))
	b := d.bAdm

	d.call(t, http.StatusNotFound, "GET", "/v1/rules/ra", b, nil)
	d.call(t, http.StatusNotFound, "PUT", "/v1/rules/ra", b, ruleBody("b"))
	d.call(t, http.StatusNotFound, "POST", "/v1/rules/ra/deactivate", b, nil)
	d.call(t, http.StatusNotFound, "POST", "/v1/rules/ra/activate", b, nil)
	d.call(t, http.StatusNotFound, "POST", "/v1/rules/ra/dry-run", b, nil)
	var list struct{ Rules []ruleState }
	if err := json.Unmarshal(d.call(t, http.StatusOK, "GET", "/v1/rules", b, nil).body, &list); err != nil || len(list.Rules) != 0 {
		t.Fatalf("b lists %+v (%v)", list, err)
	}
	// b cannot make a rule for a's performer: it reads as one that does not exist.
	theirs := d.call(t, http.StatusUnprocessableEntity, "PUT", "/v1/rules/rb", b, ruleBody("a")).problems(t)
	body := ruleBody("a")
	body["performer_id"] = "nobody"
	if none := d.call(t, http.StatusUnprocessableEntity, "PUT", "/v1/rules/rb", b, body).problems(t); !slices.Equal(theirs, []string{"performer_id"}) || !slices.Equal(none, theirs) {
		t.Fatalf("b naming a's performer: %v; naming no one: %v", theirs, none)
	}
	// Nor point its own performer at a's show.
	body = ruleBody("b")
	body["show_id"] = "sa"
	if got := d.call(t, http.StatusUnprocessableEntity, "PUT", "/v1/rules/rb", b, body).problems(t); !slices.Equal(got, []string{"show_id"}) {
		t.Fatalf("b naming a's show: %v", got)
	}

	if calls := dry.made(); len(calls) != 0 {
		t.Fatalf("b's dry run of a's rule ran: %v", calls)
	}
	got := d.call(t, http.StatusOK, "GET", "/v1/rules/ra", d.a[store.RoleViewer], nil).rule(t)
	if got.Version != 1 || !got.Active || got.Rule["performer_id"] != "pa" {
		t.Fatalf("a's rule after b's tries: %+v", got)
	}
	// a's own dry run runs, over the window asked for.
	rep := d.call(t, http.StatusOK, "POST", "/v1/rules/ra/dry-run?since=24h", d.a[store.RoleMarketer], nil).json(t)
	if rep["rule_id"] != "ra" || rep["offers"] != 3.0 {
		t.Fatalf("dry run: %v", rep)
	}
	d.call(t, http.StatusOK, "POST", "/v1/rules/ra/dry-run", d.a[store.RoleMarketer], nil)
	d.call(t, http.StatusUnprocessableEntity, "POST", "/v1/rules/ra/dry-run?since=-1h", d.a[store.RoleMarketer], nil)
	if calls := dry.made(); !slices.Equal(calls, []string{"ra 24h0m0s", "ra 168h0m0s"}) {
		t.Fatalf("dry runs: %v", calls)
	}
}

// Two organizations creating the same new rule id at once: one gets it, the
// other a 404, and the winner's rule is as it wrote it.
func TestOrganizationsRacingForOneRuleIDNeverOverwriteEachOther(t *testing.T) {
	d := newRuleDesk(t, nil)
	type attempt struct {
		org, token string
	}
	orgs := []attempt{{"a", d.a[store.RoleMarketer]}, {"b", d.bAdm}}
	const ids = 12
	statuses := make([][2]int, ids)
	errs := make(chan error, 2*ids)
	var wg sync.WaitGroup
	for i := range ids {
		for j, o := range orgs {
			wg.Go(func() {
				b, _ := json.Marshal(ruleBody(o.org))
				req, err := http.NewRequestWithContext(t.Context(), "PUT", fmt.Sprintf("%s/v1/rules/race-%d", d.url, i), bytes.NewReader(b))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Authorization", "Bearer "+o.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i][j] = resp.StatusCode
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, st := range statuses {
		winner := slices.Index(st[:], http.StatusCreated)
		if winner < 0 || st[1-winner] != http.StatusNotFound {
			t.Fatalf("race-%d: a got %d, b got %d; want one 201 and one 404", i, st[0], st[1])
		}
		o := orgs[winner]
		got := d.call(t, http.StatusOK, "GET", fmt.Sprintf("/v1/rules/race-%d", i), o.token, nil).rule(t)
		if got.Version != 1 || got.Rule["performer_id"] != "p"+o.org {
			t.Fatalf("race-%d, won by %s: %+v", i, o.org, got)
		}
		d.call(t, http.StatusNotFound, "GET", fmt.Sprintf("/v1/rules/race-%d", i), orgs[1-winner].token, nil)
	}
}

func TestViewersReadRulesAndNothingMore(t *testing.T) {
	d := newRuleDesk(t, &dryRuns{})
	d.call(t, http.StatusCreated, "PUT", "/v1/rules/ra", d.a[store.RoleAdmin], ruleBody("a"))
	viewer := d.a[store.RoleViewer]
	d.call(t, http.StatusOK, "GET", "/v1/rules", viewer, nil)
	d.call(t, http.StatusOK, "GET", "/v1/rules/ra", viewer, nil)
	d.call(t, http.StatusForbidden, "PUT", "/v1/rules/ra", viewer, ruleBody("a"))
	d.call(t, http.StatusForbidden, "PUT", "/v1/rules/new", viewer, ruleBody("a"))
	d.call(t, http.StatusForbidden, "POST", "/v1/rules/ra/deactivate", viewer, nil)
	d.call(t, http.StatusForbidden, "POST", "/v1/rules/ra/activate", viewer, nil)
	d.call(t, http.StatusForbidden, "POST", "/v1/rules/ra/dry-run", viewer, nil)
	d.call(t, http.StatusUnauthorized, "GET", "/v1/rules", "", nil)
	d.call(t, http.StatusUnauthorized, "GET", "/v1/rules/ra", "cr_not-a-token", nil)
	d.call(t, http.StatusUnauthorized, "PUT", "/v1/rules/ra", "pk_partner", ruleBody("a"))
}

func TestAnInvalidRuleIsRefusedWithEveryProblem(t *testing.T) {
	d := newRuleDesk(t, nil)
	mkt := d.a[store.RoleMarketer]
	body := ruleBody("a")
	body["tiers"] = []any{
		map[string]any{"threshold": 30, "perks": []string{"presale", "discount:150"}},
		map[string]any{"threshold": 20, "perks": []string{"limo"}},
	}
	body["condition"] = "session.minutes >= 10 &&\n  fann.friend_count > 3"
	body["lifetime"] = "2 days"
	body["quiet_hours"] = map[string]any{"start": "22:00", "end": "25:00", "mode": "later"}
	body["holdout"] = 0.9
	body["show_id"] = "sb"
	body["schedule"] = map[string]any{"cron": "61 18 * * FRI", "time_zone": "Mars/Olympus", "duration": "all evening"}
	r := d.call(t, http.StatusUnprocessableEntity, "PUT", "/v1/rules/broken", mkt, body)
	want := []string{"lifetime", "tiers[0].perks[1]", "tiers[1].threshold", "tiers[1].perks[0]", "quiet_hours.end",
		"quiet_hours.mode", "holdout", "condition", "show_id", "schedule.cron", "schedule.time_zone", "schedule.duration"}
	if got := r.problems(t); !sameSet(got, want) {
		t.Fatalf("problems %v, want %v\n%s", got, want, r.body)
	}
	// The CEL error says where, as line:column.
	var inv struct {
		Problems []struct{ Field, Reason string }
	}
	if err := json.Unmarshal(r.body, &inv); err != nil {
		t.Fatal(err)
	}
	at := regexp.MustCompile(`^2:3: undeclared reference to 'fann'`)
	if !slices.ContainsFunc(inv.Problems, func(p struct{ Field, Reason string }) bool {
		return p.Field == "condition" && at.MatchString(p.Reason)
	}) {
		t.Fatalf("no condition problem at 2:3: %s", r.body)
	}
	d.call(t, http.StatusNotFound, "GET", "/v1/rules/broken", mkt, nil)

	// A valid schedule is kept as written.
	body = ruleBody("a")
	body["schedule"] = map[string]any{"cron": "0 18 * * FRI", "time_zone": "Europe/Berlin", "duration": "4h"}
	d.call(t, http.StatusCreated, "PUT", "/v1/rules/fridays", mkt, body)
	if got := d.call(t, http.StatusOK, "GET", "/v1/rules/fridays", mkt, nil).rule(t).Rule["schedule"]; fmt.Sprint(got) != "map[cron:0 18 * * FRI duration:4h time_zone:Europe/Berlin]" {
		t.Fatalf("schedule read back as %v", got)
	}

	// Members a rule does not have are a 400 naming each, wherever they are.
	body = ruleBody("a")
	body["colour"] = "blue"
	body["tiers"] = []any{map[string]any{"threshold": 10, "perks": []string{"presale"}, "thresold": 12}}
	body["quiet_hours"] = map[string]any{"start": "22:00", "end": "08:00", "mode": "hold", "tz": "UTC"}
	body["schedule"] = map[string]any{"cron": "0 18 * * *", "duration": "2h", "zone": "UTC"}
	r = d.call(t, http.StatusBadRequest, "PUT", "/v1/rules/broken", mkt, body)
	if detail := r.json(t)["detail"].(string); !strings.Contains(detail, "colour, quiet_hours.tz, schedule.zone, tiers[0].thresold") {
		t.Fatalf("unknown fields: %s", detail)
	}
	d.call(t, http.StatusBadRequest, "PUT", "/v1/rules/broken", mkt, json.RawMessage(`[1, 2]`))
	d.call(t, http.StatusBadRequest, "PUT", "/v1/rules/broken", mkt, json.RawMessage(`{"tiers": "many"}`))
	d.call(t, http.StatusRequestEntityTooLarge, "PUT", "/v1/rules/broken", mkt,
		map[string]any{"name": strings.Repeat("x", 70<<10)})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
