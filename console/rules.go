package console

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/crescendo-hq/crescendo/internal/ruleyaml"
	"github.com/crescendo-hq/crescendo/replay"
	"github.com/crescendo-hq/crescendo/store"
)

// apiProblem is the JSON API's problem body: a detail and, for a 422, each
// problem as a field path and a reason.
type apiProblem struct {
	Status   int    `json:"status"`
	Title    string `json:"title"`
	Detail   string `json:"detail"`
	Problems []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"problems"`
}

func decodeProblem(r apiReply) apiProblem {
	var p apiProblem
	_ = json.Unmarshal(r.body, &p)
	if p.Detail == "" && len(p.Problems) == 0 {
		p.Detail = http.StatusText(r.status)
	}
	return p
}

type ruleList struct {
	Rules   []store.OrgRule
	CanEdit bool
}

func (c *Console) listRules(w http.ResponseWriter, r *http.Request, s session) {
	reply := c.call(r.Context(), s, http.MethodGet, "/v1/rules", nil)
	var body struct {
		Rules []store.OrgRule `json:"rules"`
	}
	if reply.status != http.StatusOK || json.Unmarshal(reply.body, &body) != nil {
		c.apiFailed(w, r, s, reply)
		return
	}
	p := c.page(s, "Rules")
	p.Nav = "rules"
	c.render(w, r, http.StatusOK, "rules", p, ruleList{Rules: body.Rules, CanEdit: s.CanEdit()})
}

// ruleEditor is the rule form: the YAML as typed and what the API said.
type ruleEditor struct {
	ID       string
	New      bool
	Source   string
	Problems []problem
	// Detail is a refusal that names no field (unknown members, malformed YAML).
	Detail string
}

// rulePageData is the rule page: the rule, its versions, its editor, its
// dry run and its plots.
type rulePageData struct {
	Rule    store.OrgRule
	CanEdit bool
	Editor  ruleEditor
	Notice  string
	// ActivateProblems are the API's reasons for refusing an activation.
	ActivateProblems []problem
	Since            string
	DryRun           *replay.Report
	DryRunError      string
	Funnel           *funnelPlot
	FunnelError      string
	Timeline         timelinePlot
	Distribution     distributionPlot
}

const newRuleTemplate = `name: Presale for the faithful
performer_id: PERFORMER
show_id: SHOW
tiers:
  - threshold: 20
    perks: [presale]
  - threshold: 45
    perks: [presale, vip_upgrade]
condition: session.minutes >= 10
channels: [push, sms, email]
lifetime: 48h
per_fan_cap: 1
`

func (c *Console) newRulePage(w http.ResponseWriter, r *http.Request, s session) {
	p := c.page(s, "New rule")
	p.Nav = "rules"
	c.render(w, r, http.StatusOK, "rule_new", p, ruleEditor{New: true, Source: newRuleTemplate})
}

// ruleIDPattern is what the console takes as a new rule's id: the API takes
// any id without spaces or slashes, and a URL-safe one keeps links plain.
var ruleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// createRule saves a new rule; an id already taken is refused here, since
// the API's PUT would replace that rule instead.
func (c *Console) createRule(w http.ResponseWriter, r *http.Request, s session) {
	ed := ruleEditor{New: true, ID: strings.TrimSpace(r.PostFormValue("id")), Source: r.PostFormValue("source")}
	p := c.page(s, "New rule")
	p.Nav = "rules"
	if !ruleIDPattern.MatchString(ed.ID) {
		ed.Problems = []problem{{Field: "id", Reason: "want 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit"}}
		c.render(w, r, http.StatusUnprocessableEntity, "rule_new", p, ed)
		return
	}
	if reply := c.call(r.Context(), s, http.MethodGet, rulePath(ed.ID, ""), nil); reply.status == http.StatusOK {
		ed.Problems = []problem{{Field: "id", Reason: "your organization has a rule with this id already: open it from the rules list to change it"}}
		c.render(w, r, http.StatusConflict, "rule_new", p, ed)
		return
	}
	status, ok := c.putRule(r, s, &ed)
	if !ok {
		c.render(w, r, status, "rule_new", p, ed)
		return
	}
	http.Redirect(w, r, consolePath(ed.ID)+"?saved=created", http.StatusSeeOther)
}

// putRule sends the editor's YAML to the API's PUT and fills in what it
// refused; ok when the rule was saved.
func (c *Console) putRule(r *http.Request, s session, ed *ruleEditor) (status int, ok bool) {
	body, err := yaml.YAMLToJSON([]byte(ed.Source))
	if err != nil {
		ed.Problems = locateYAMLError(ed.Source, err)
		return http.StatusUnprocessableEntity, false
	}
	reply := c.call(r.Context(), s, http.MethodPut, rulePath(ed.ID, ""), body)
	switch reply.status {
	case http.StatusOK, http.StatusCreated:
		return reply.status, true
	case http.StatusUnprocessableEntity:
		ed.Problems = problemsOf(ed.Source, decodeProblem(reply))
	default:
		ed.Detail = decodeProblem(reply).Detail
	}
	return reply.status, false
}

// problemsOf places the API's 422 problems in the source.
func problemsOf(src string, p apiProblem) []problem {
	out := make([]problem, len(p.Problems))
	for i, q := range p.Problems {
		out[i] = problem{Field: q.Field, Reason: q.Reason}
	}
	return locate(src, out)
}

// yamlLine finds the line number in the YAML parser's messages ("yaml: line 7: …").
var yamlLine = regexp.MustCompile(`line (\d+)`)

// locateYAMLError places a YAML syntax error at its line.
func locateYAMLError(src string, err error) []problem {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "yaml: ")
	p := problem{Field: "YAML", Reason: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Col = 1
		lines := strings.Split(src, "\n")
		if p.Line > 0 && p.Line <= len(lines) {
			p.Excerpt, p.Caret = strings.TrimRight(lines[p.Line-1], "\r"), "^"
		}
	}
	return []problem{p}
}

func rulePath(id, action string) string {
	p := "/v1/rules/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// consolePath is the console page of a rule.
func consolePath(id string) string { return "/console/rules/" + url.PathEscape(id) }

// loadRule reads a rule through the API; ok false once it answered the page.
func (c *Console) loadRule(w http.ResponseWriter, r *http.Request, s session, id string) (store.OrgRule, bool) {
	reply := c.call(r.Context(), s, http.MethodGet, rulePath(id, ""), nil)
	var rule store.OrgRule
	if reply.status != http.StatusOK || json.Unmarshal(reply.body, &rule) != nil {
		c.apiFailed(w, r, s, reply)
		return rule, false
	}
	return rule, true
}

// ruleSource is a stored rule as the YAML the editor shows.
func ruleSource(rule store.OrgRule) (string, error) {
	raw, err := json.Marshal(rule.Rule)
	if err != nil {
		return "", fmt.Errorf("encoding rule: %w", err)
	}
	y, err := ruleyaml.Ordered(raw, "id", "version")
	if err != nil {
		return "", err
	}
	return string(y), nil
}

// rulePage shows a rule; the saved query says what the last post did.
func (c *Console) rulePage(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	rule, ok := c.loadRule(w, r, s, id)
	if !ok {
		return
	}
	src, err := ruleSource(rule)
	if err != nil {
		c.fail(w, r, "showing rule", err)
		return
	}
	data := rulePageData{Rule: rule, Editor: ruleEditor{ID: id, Source: src}}
	switch r.URL.Query().Get("saved") {
	case "created":
		data.Notice = fmt.Sprintf("Rule created as version %d; it is active and issues offers.", rule.Version)
	case "changed":
		data.Notice = fmt.Sprintf("Saved as version %d.", rule.Version)
	case "unchanged":
		data.Notice = fmt.Sprintf("Nothing changed: the rule is still version %d.", rule.Version)
	case "activated":
		data.Notice = "The rule is active: it issues offers."
	case "deactivated":
		data.Notice = "The rule is inactive: it issues no offers."
	}
	c.renderRule(w, r, s, http.StatusOK, data)
}

// renderRule fills in the plots and renders the rule page.
func (c *Console) renderRule(w http.ResponseWriter, r *http.Request, s session, status int, data rulePageData) {
	data.CanEdit = s.CanEdit()
	data.Since = cmp.Or(data.Since, "168h")
	reply := c.call(r.Context(), s, http.MethodGet, rulePath(data.Rule.Rule.ID, "funnel"), nil)
	var f store.Funnel
	if reply.status == http.StatusOK && json.Unmarshal(reply.body, &f) == nil {
		plot := newFunnelPlot(f)
		data.Funnel = &plot
	} else {
		data.FunnelError = decodeProblem(reply).Detail
	}
	data.Timeline = c.timeline(r, s, data.Rule.Rule.ID)
	data.Distribution = c.distribution(r, s, data.Rule.Rule)
	p := c.page(s, "Rule "+data.Rule.Rule.ID)
	p.Nav = "rules"
	c.render(w, r, status, "rule", p, data)
}

// saveRule saves an edited rule: a new version when the body changed.
func (c *Console) saveRule(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	rule, ok := c.loadRule(w, r, s, id)
	if !ok {
		return
	}
	ed := ruleEditor{ID: id, Source: r.PostFormValue("source")}
	status, saved := c.putRule(r, s, &ed)
	if !saved {
		c.renderRule(w, r, s, status, rulePageData{Rule: rule, Editor: ed})
		return
	}
	after, ok := c.loadRule(w, r, s, id)
	if !ok {
		return
	}
	outcome := "changed"
	if after.Version == rule.Version {
		outcome = "unchanged"
	}
	http.Redirect(w, r, consolePath(id)+"?saved="+outcome, http.StatusSeeOther)
}

func (c *Console) activateRule(w http.ResponseWriter, r *http.Request, s session) {
	c.setActive(w, r, s, "activate", "activated")
}

func (c *Console) deactivateRule(w http.ResponseWriter, r *http.Request, s session) {
	c.setActive(w, r, s, "deactivate", "deactivated")
}

// setActive activates or deactivates a rule; an activation the API refuses
// (the rule no longer compiles against its show) shows its problems.
func (c *Console) setActive(w http.ResponseWriter, r *http.Request, s session, action, outcome string) {
	id := r.PathValue("id")
	reply := c.call(r.Context(), s, http.MethodPost, rulePath(id, action), nil)
	if reply.status == http.StatusOK {
		http.Redirect(w, r, consolePath(id)+"?saved="+outcome, http.StatusSeeOther)
		return
	}
	if reply.status != http.StatusUnprocessableEntity {
		c.apiFailed(w, r, s, reply)
		return
	}
	rule, ok := c.loadRule(w, r, s, id)
	if !ok {
		return
	}
	src, err := ruleSource(rule)
	if err != nil {
		c.fail(w, r, "showing rule", err)
		return
	}
	c.renderRule(w, r, s, http.StatusUnprocessableEntity, rulePageData{Rule: rule, Editor: ruleEditor{ID: id, Source: src},
		ActivateProblems: problemsOf(src, decodeProblem(reply))})
}

// dryRun replays the rule over the window asked for and shows the report
// on the rule's page.
func (c *Console) dryRun(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	rule, ok := c.loadRule(w, r, s, id)
	if !ok {
		return
	}
	src, err := ruleSource(rule)
	if err != nil {
		c.fail(w, r, "showing rule", err)
		return
	}
	data := rulePageData{Rule: rule, Editor: ruleEditor{ID: id, Source: src}, Since: strings.TrimSpace(r.PostFormValue("since"))}
	status := http.StatusOK
	if _, err := time.ParseDuration(data.Since); err != nil {
		data.DryRunError = fmt.Sprintf("since: want a duration such as 168h or 90m, got %q", data.Since)
		status = http.StatusUnprocessableEntity
	} else {
		reply := c.call(r.Context(), s, http.MethodPost, rulePath(id, "dry-run")+"?since="+url.QueryEscape(data.Since), nil)
		var rep replay.Report
		if reply.status == http.StatusOK && json.Unmarshal(reply.body, &rep) == nil {
			data.DryRun = &rep
		} else {
			p := decodeProblem(reply)
			data.DryRunError = p.Detail
			for _, q := range p.Problems {
				data.DryRunError = q.Field + ": " + q.Reason
			}
			status = reply.status
		}
	}
	c.renderRule(w, r, s, status, data)
}

// apiFailed answers an API refusal as a page with its status and detail.
func (c *Console) apiFailed(w http.ResponseWriter, r *http.Request, s session, reply apiReply) {
	if reply.status == http.StatusUnauthorized {
		c.clearSession(w, r)
		http.Redirect(w, r, "/console/signin?expired=1", http.StatusSeeOther)
		return
	}
	if reply.status < 400 {
		c.fail(w, r, "reading API answer", errors.New("unexpected answer "+strconv.Itoa(reply.status)))
		return
	}
	c.render(w, r, reply.status, "error", c.page(s, http.StatusText(reply.status)), errorPage{Message: decodeProblem(reply).Detail})
}
