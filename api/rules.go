package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/replay"
	"github.com/crescendo-hq/crescendo/store"
)

// RuleStore keeps marketer organizations' offer rules (F9). Every method is
// scoped to one organization: another's rule is store.ErrNotFound, exactly as
// one that does not exist; *store.Store is one.
type RuleStore interface {
	RulesForOrg(ctx context.Context, orgID string) ([]store.OrgRule, error)
	RuleForOrg(ctx context.Context, orgID, id string) (store.OrgRule, error)
	CheckRuleForOrg(ctx context.Context, orgID string, r offers.Rule) error
	PutRuleForOrg(ctx context.Context, orgID string, r offers.Rule) (store.RulePut, error)
	SetRuleActive(ctx context.Context, orgID, id string, active bool) (changed bool, err error)
}

// RuleDryRunner replays a stored rule, active or not, over the activity of
// the last since without issuing anything, and reports what it would have
// done (F12a).
type RuleDryRunner interface {
	DryRun(ctx context.Context, ruleID string, since time.Duration) (replay.Report, error)
}

// defaultDryRunWindow is how far back a dry run looks without ?since.
const defaultDryRunWindow = 7 * 24 * time.Hour

const noRule = "no such rule in this organization"

// routeRules serves the rules under /v1/rules when Config.Rules and
// Config.Marketers are set. Viewers read; marketers and admins change,
// activate and dry-run.
func (s *server) routeRules(mux *http.ServeMux) {
	if s.cfg.Rules == nil || s.cfg.Marketers == nil {
		return
	}
	viewer, marketer := s.withRole(store.RoleViewer), s.withRole(store.RoleMarketer)
	mux.HandleFunc("GET /v1/rules", viewer(s.listRules))
	mux.HandleFunc("GET /v1/rules/{id}", viewer(s.getRule))
	mux.HandleFunc("PUT /v1/rules/{id}", marketer(s.putRule))
	mux.HandleFunc("POST /v1/rules/{id}/activate", marketer(s.activateRule))
	mux.HandleFunc("POST /v1/rules/{id}/deactivate", marketer(s.deactivateRule))
	mux.HandleFunc("POST /v1/rules/{id}/dry-run", marketer(s.dryRunRule))
}

func (s *server) listRules(w http.ResponseWriter, r *http.Request, p store.Principal) {
	list, err := s.cfg.Rules.RulesForOrg(r.Context(), p.OrgID)
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": list})
}

// getRule answers the rule with its version, state and version list; its
// "rule" member is what PUT takes back.
func (s *server) getRule(w http.ResponseWriter, r *http.Request, p store.Principal) {
	rule, err := s.cfg.Rules.RuleForOrg(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

// rulePut is the answer to PUT /v1/rules/{id}: the rule as GET shows it, and
// whether the PUT made a new version.
type rulePut struct {
	store.OrgRule
	Changed bool `json:"changed"`
}

// putRule creates (201) or replaces (200) one of the organization's rules;
// the path's id wins over the body's. An unchanged body keeps the version.
func (s *server) putRule(w http.ResponseWriter, r *http.Request, p store.Principal) {
	rule, decodeProblems, ok := decodeRule(w, r)
	if !ok {
		return
	}
	rule.ID = r.PathValue("id")
	if decodeProblems != nil {
		// List what could not be read with every other problem of the rule.
		err := s.cfg.Rules.CheckRuleForOrg(r.Context(), p.OrgID, rule)
		var inv *store.InvalidError
		if err != nil && !errors.As(err, &inv) {
			s.marketerError(w, r, err, noRule)
			return
		}
		writeInvalid(w, mergeProblems(decodeProblems, inv))
		return
	}
	put, err := s.cfg.Rules.PutRuleForOrg(r.Context(), p.OrgID, rule)
	if err != nil {
		s.ruleError(w, r, err)
		return
	}
	view, err := s.cfg.Rules.RuleForOrg(r.Context(), p.OrgID, rule.ID)
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	s.logger.InfoContext(r.Context(), "rule saved", slog.String("org", p.OrgID), slog.String("rule", rule.ID),
		slog.Int("version", put.Version), slog.Bool("changed", put.Changed), slog.String("by", p.TokenID.String()))
	status := http.StatusOK
	if put.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/rules/"+url.PathEscape(rule.ID))
	}
	writeJSON(w, status, rulePut{OrgRule: view, Changed: put.Changed})
}

// ruleError answers a PUT's store error; a 404 says what it can mean there.
func (s *server) ruleError(w http.ResponseWriter, r *http.Request, err error) {
	s.marketerError(w, r, err, noRule+" (rule ids are unique across organizations: choose another id to create one)")
}

// activateRule makes the rule issue offers, after checking that it still
// compiles against its show as it is now.
func (s *server) activateRule(w http.ResponseWriter, r *http.Request, p store.Principal) {
	rule, err := s.cfg.Rules.RuleForOrg(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	if err := s.cfg.Rules.CheckRuleForOrg(r.Context(), p.OrgID, rule.Rule); err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	s.setRuleActive(w, r, p, true)
}

func (s *server) deactivateRule(w http.ResponseWriter, r *http.Request, p store.Principal) {
	s.setRuleActive(w, r, p, false)
}

func (s *server) setRuleActive(w http.ResponseWriter, r *http.Request, p store.Principal, active bool) {
	id := r.PathValue("id")
	changed, err := s.cfg.Rules.SetRuleActive(r.Context(), p.OrgID, id, active)
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	if changed {
		s.logger.InfoContext(r.Context(), "rule state changed", slog.String("org", p.OrgID), slog.String("rule", id),
			slog.Bool("active", active), slog.String("by", p.TokenID.String()))
	}
	s.getRule(w, r, p)
}

// dryRunRule replays the rule over the activity of the last ?since (168h by
// default) and answers the report; 501 when the server has no dry runner.
func (s *server) dryRunRule(w http.ResponseWriter, r *http.Request, p store.Principal) {
	since := defaultDryRunWindow
	if q := r.URL.Query().Get("since"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d <= 0 {
			writeInvalid(w, fmt.Errorf("since: want a positive duration such as 168h, got %q", q))
			return
		}
		since = d
	}
	id := r.PathValue("id")
	if _, err := s.cfg.Rules.RuleForOrg(r.Context(), p.OrgID, id); err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	if s.cfg.DryRun == nil {
		writeProblem(w, http.StatusNotImplemented, "this server does not run dry runs")
		return
	}
	rep, err := s.cfg.DryRun.DryRun(r.Context(), id, since)
	if err != nil {
		s.marketerError(w, r, err, noRule)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// decodeRule reads a rule from the request body. Members a rule does not
// have, at any depth, answer 400 naming each; so does JSON that is not a
// rule object or has a member of the wrong type. A malformed duration is
// not a 400 but a problem returned with the rule (its field left zero), to
// be listed with the rule's other problems.
func decodeRule(w http.ResponseWriter, r *http.Request) (rule offers.Rule, problems []error, ok bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("reading body: %v", err))
		return rule, nil, false
	}
	if len(body) > maxBody {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a rule is at most %d bytes", maxBody))
		return rule, nil, false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		writeProblem(w, http.StatusBadRequest, "decoding JSON body: want a rule object")
		return rule, nil, false
	}
	if unknown := unknownRuleMembers(members); len(unknown) > 0 {
		writeProblem(w, http.StatusBadRequest, "unknown fields: "+strings.Join(unknown, ", "))
		return rule, nil, false
	}
	for _, field := range []string{"lifetime", "cooldown"} {
		var d string
		if json.Unmarshal(members[field], &d) != nil || d == "" {
			continue // absent, or of the wrong type: reported below
		}
		if _, err := time.ParseDuration(d); err != nil {
			problems = append(problems, fmt.Errorf("%s: want a duration such as 48h or 90m, got %q", field, d))
			delete(members, field)
		}
	}
	if problems != nil {
		if body, err = json.Marshal(members); err != nil {
			writeProblem(w, http.StatusBadRequest, fmt.Sprintf("decoding JSON body: %v", err))
			return rule, nil, false
		}
	}
	if err := json.Unmarshal(body, &rule); err != nil {
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("decoding JSON body: %v", err))
		return rule, nil, false
	}
	return rule, problems, true
}

// unknownRuleMembers names the members of a rule object, and of its tiers,
// quiet hours, templates and schedule, that a rule does not have, sorted.
func unknownRuleMembers(members map[string]json.RawMessage) []string {
	var unknown []string
	check := func(prefix string, raw json.RawMessage, known map[string]bool) {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return // not an object: the type error is reported when decoding
		}
		for k := range m {
			if !known[k] {
				unknown = append(unknown, prefix+k)
			}
		}
	}
	for k, raw := range members {
		switch {
		case !ruleFields()[k]:
			unknown = append(unknown, k)
		case k == "tiers":
			var tiers []json.RawMessage
			_ = json.Unmarshal(raw, &tiers) // not a list: reported when decoding
			for i, t := range tiers {
				check(fmt.Sprintf("tiers[%d].", i), t, jsonFields(reflect.TypeFor[offers.Tier]()))
			}
		case k == "quiet_hours":
			check("quiet_hours.", raw, jsonFields(reflect.TypeFor[offers.QuietHours]()))
		case k == "templates":
			check("templates.", raw, jsonFields(reflect.TypeFor[offers.Templates]()))
		case k == "schedule":
			check("schedule.", raw, jsonFields(reflect.TypeFor[offers.Schedule]()))
		}
	}
	slices.Sort(unknown)
	return unknown
}

// ruleFields are the members of a rule's JSON form: those offers.Rule writes
// when every one of its fields is set, so that they follow the offers package.
var ruleFields = sync.OnceValue(func() map[string]bool {
	var rule offers.Rule
	v := reflect.ValueOf(&rule).Elem()
	for i := range v.NumField() {
		setNonZero(v.Field(i))
	}
	b, err := json.Marshal(rule)
	var m map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		// A rule that cannot be encoded is a bug of the offers package.
		panic(fmt.Sprintf("api: listing a rule's JSON members: %v", err))
	}
	known := make(map[string]bool, len(m))
	for k := range m {
		known[k] = true
	}
	return known
})

// setNonZero sets v, when it can be set, to a value that is not its type's
// zero, so that encoding it omits nothing.
func setNonZero(v reflect.Value) {
	if !v.CanSet() {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem())
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1, 0).UTC()))
			return
		}
		for i := range v.NumField() {
			setNonZero(v.Field(i))
		}
	}
}

// jsonFields names the members a plain struct type reads, by its json tags.
func jsonFields(t reflect.Type) map[string]bool {
	known := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		known[name] = true
	}
	return known
}

// mergeProblems lists first the problems found while decoding a rule, then
// those the store found, less the ones about fields already listed: a
// malformed duration was left zero, which the store calls missing.
func mergeProblems(decoded []error, inv *store.InvalidError) error {
	listed := map[string]bool{}
	var b bytes.Buffer
	for _, err := range decoded {
		field, _, _ := strings.Cut(err.Error(), ": ")
		listed[field] = true
		b.WriteString(err.Error() + "\n")
	}
	if inv != nil {
		for line := range strings.SplitSeq(inv.Error(), "\n") {
			if field, _, _ := strings.Cut(line, ": "); !listed[field] {
				b.WriteString(line + "\n")
			}
		}
	}
	return errors.New(strings.TrimSuffix(b.String(), "\n"))
}
