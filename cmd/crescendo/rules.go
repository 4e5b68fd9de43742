package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/crescendo-hq/crescendo/internal/ruleyaml"
	"github.com/crescendo-hq/crescendo/replay"
)

const rulesUsage = `usage:
  crescendo rules apply -f FILE               create or replace the rules in a YAML or JSON file ("-": stdin)
  crescendo rules list                        the organization's rules
  crescendo rules get ID [--json]             one rule, as YAML that apply takes back
  crescendo rules activate ID                 let the rule issue offers
  crescendo rules deactivate ID               stop it issuing offers
  crescendo rules dry-run ID [--since 168h] [--json]
                                              what the rule would have done over the activity of the last --since

They call the HTTP API at CRESCENDO_URL (default http://127.0.0.1:8080) with the
marketer token in CRESCENDO_TOKEN (crescendo tokens create makes one). A file
holds one rule, or a list of them under "rules:"; see README, Rules.
`

// rulesCommand is one `crescendo rules` subcommand: how many ids it takes,
// and what it does once its flags are parsed.
type rulesCommand struct {
	ids int
	run func(ctx context.Context, c *apiClient, ids []string, stdout, stderr io.Writer) error
}

// rulesCommands declare each subcommand's flags and return the command.
var rulesCommands = map[string]func(fs *flag.FlagSet) rulesCommand{
	"apply": func(fs *flag.FlagSet) rulesCommand {
		file := fs.String("f", "", `the YAML or JSON file of rules ("-": standard input)`)
		return rulesCommand{run: func(ctx context.Context, c *apiClient, _ []string, stdout, stderr io.Writer) error {
			if *file == "" {
				return errors.New("-f FILE is required")
			}
			return applyRules(ctx, c, *file, stdout, stderr)
		}}
	},
	"list": func(*flag.FlagSet) rulesCommand {
		return rulesCommand{run: func(ctx context.Context, c *apiClient, _ []string, stdout, _ io.Writer) error {
			return listRules(ctx, c, stdout)
		}}
	},
	"get": func(fs *flag.FlagSet) rulesCommand {
		asJSON := fs.Bool("json", false, "print the API's JSON answer as it is")
		return rulesCommand{ids: 1, run: func(ctx context.Context, c *apiClient, ids []string, stdout, _ io.Writer) error {
			return getRule(ctx, c, ids[0], *asJSON, stdout)
		}}
	},
	"activate": func(*flag.FlagSet) rulesCommand {
		return rulesCommand{ids: 1, run: func(ctx context.Context, c *apiClient, ids []string, stdout, _ io.Writer) error {
			return setRuleActive(ctx, c, ids[0], "activate", stdout)
		}}
	},
	"deactivate": func(*flag.FlagSet) rulesCommand {
		return rulesCommand{ids: 1, run: func(ctx context.Context, c *apiClient, ids []string, stdout, _ io.Writer) error {
			return setRuleActive(ctx, c, ids[0], "deactivate", stdout)
		}}
	},
	"dry-run": func(fs *flag.FlagSet) rulesCommand {
		since := fs.Duration("since", 168*time.Hour, "how far back to replay")
		asJSON := fs.Bool("json", false, "print the API's JSON report as it is")
		return rulesCommand{ids: 1, run: func(ctx context.Context, c *apiClient, ids []string, stdout, _ io.Writer) error {
			return dryRunRule(ctx, c, ids[0], *since, *asJSON, stdout)
		}}
	},
}

// runRules runs `crescendo rules <verb> [flags] [ID]` against the HTTP API.
func runRules(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return errors.New("rules: no subcommand given")
	}
	verb := args[0]
	declare, ok := rulesCommands[verb]
	if !ok {
		fmt.Fprint(stderr, rulesUsage)
		return fmt.Errorf("unknown command %q", "rules "+verb)
	}
	name := "rules " + verb
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmd := declare(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: crescendo %s [flags]%s\n", name, strings.Repeat(" ID", cmd.ids))
		fs.PrintDefaults()
	}
	ids, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ids) != cmd.ids {
		fs.Usage()
		return fmt.Errorf("%s: want %d rule id(s), got %q", name, cmd.ids, ids)
	}
	c, err := newAPIClient(getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.run(ctx, c, ids, stdout, stderr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// parseInterleaved parses flags that may stand before or after the
// positional arguments, as in `rules get ID --json`, and returns the latter.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// apiClient calls Crescendo's HTTP API with a marketer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(getenv func(string) string) (*apiClient, error) {
	return newAPIClientFor(getenv, "CRESCENDO_TOKEN", "a marketer token (crescendo tokens create makes one)")
}

// newAPIClientFor makes a client with the bearer token in tokenVar.
func newAPIClientFor(getenv func(string) string, tokenVar, what string) (*apiClient, error) {
	token := getenv(tokenVar)
	if token == "" {
		return nil, fmt.Errorf("%s is not set: it takes %s", tokenVar, what)
	}
	base := strings.TrimSuffix(cmp.Or(getenv("CRESCENDO_URL"), "http://127.0.0.1:8080"), "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("CRESCENDO_URL: want an http or https URL, got %q", base)
	}
	return &apiClient{base: base, token: token, http: &http.Client{}}, nil
}

// apiError is an answer other than 2xx: its problem body.
type apiError struct {
	Status   int    `json:"status"`
	Title    string `json:"title"`
	Detail   string `json:"detail"`
	Problems []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"problems"`
}

// Error says the status and detail, then each problem on a line of its own.
func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, cmp.Or(e.Title, http.StatusText(e.Status)))
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Reason)
	}
	return b.String()
}

// do sends a request and decodes a 2xx answer into out, when out is not nil,
// or raw bytes into *[]byte. Other answers are an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("making request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{}
		if json.Unmarshal(b, e) != nil || e.Status == 0 {
			e = &apiError{Detail: strings.TrimSpace(string(b))}
		}
		e.Status = resp.StatusCode
		return resp.StatusCode, e
	}
	switch out := out.(type) {
	case nil:
	case *[]byte:
		*out = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// rulePath is the path of a rule, or of an action on it when action is not empty.
func rulePath(id, action string) string {
	p := "/v1/rules/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// readRuleFile reads one rule, or a list of rules under "rules:" (or a bare
// list), from a YAML or JSON file, each as JSON.
func readRuleFile(name string) ([]json.RawMessage, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var list []json.RawMessage
	var top map[string]json.RawMessage
	switch {
	case json.Unmarshal(j, &list) == nil && list != nil:
	case json.Unmarshal(j, &top) == nil && top != nil:
		raw, ok := top["rules"]
		if !ok {
			return []json.RawMessage{j}, nil
		}
		if len(top) > 1 || json.Unmarshal(raw, &list) != nil {
			return nil, fmt.Errorf("reading %s: a file with rules: holds a list of rules and nothing else", name)
		}
	default:
		return nil, fmt.Errorf("reading %s: want one rule, or a list of rules under rules:", name)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("reading %s: no rules", name)
	}
	return list, nil
}

// applyRules creates or replaces each rule of a file, in order. A refused
// rule does not stop the others; the command fails when any was refused.
func applyRules(ctx context.Context, c *apiClient, file string, stdout, stderr io.Writer) error {
	list, err := readRuleFile(file)
	if err != nil {
		return err
	}
	refused := 0
	for i, raw := range list {
		var head struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &head) != nil || head.ID == "" {
			fmt.Fprintf(stderr, "rules[%d]: refused: id: required (a string naming the rule)\n", i)
			refused++
			continue
		}
		var res struct {
			Version int  `json:"version"`
			Changed bool `json:"changed"`
		}
		status, err := c.do(ctx, http.MethodPut, rulePath(head.ID, ""), raw, &res)
		if e := (*apiError)(nil); errors.As(err, &e) {
			fmt.Fprintf(stderr, "rule %s: refused: %v\n", head.ID, e)
			refused++
			continue
		}
		if err != nil {
			return err
		}
		what := "unchanged"
		switch {
		case status == http.StatusCreated:
			what = "created"
		case res.Changed:
			what = "changed"
		}
		fmt.Fprintf(stdout, "rule %s: version %d (%s)\n", head.ID, res.Version, what)
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d rules refused", refused, len(list))
	}
	return nil
}

// ruleState is a rule as GET /v1/rules/{id} answers it.
type ruleState struct {
	Rule      json.RawMessage `json:"rule"`
	Version   int             `json:"version"`
	Active    bool            `json:"active"`
	UpdatedAt time.Time       `json:"updated_at"`
	Versions  []struct {
		Version   int       `json:"version"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"versions"`
}

func (s ruleState) state() string {
	if s.Active {
		return "active"
	}
	return "inactive"
}

func listRules(ctx context.Context, c *apiClient, stdout io.Writer) error {
	var list struct {
		Rules []ruleState `json:"rules"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/rules", nil, &list); err != nil {
		return err
	}
	if len(list.Rules) == 0 {
		fmt.Fprintln(stdout, "no rules")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERSION\tSTATE\tPERFORMER\tSHOW\tTHRESHOLDS\tNAME")
	for _, s := range list.Rules {
		var r struct {
			ID, Name    string
			PerformerID string `json:"performer_id"`
			ShowID      string `json:"show_id"`
			Tiers       []struct{ Threshold float64 }
		}
		if err := json.Unmarshal(s.Rule, &r); err != nil {
			return fmt.Errorf("decoding rule: %w", err)
		}
		thresholds := make([]string, len(r.Tiers))
		for i, t := range r.Tiers {
			thresholds[i] = strconv.FormatFloat(t.Threshold, 'g', -1, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, s.Version, s.state(), r.PerformerID, r.ShowID,
			strings.Join(thresholds, ", "), r.Name)
	}
	return tw.Flush()
}

// getRule prints a rule as YAML that apply takes back, its version, state and
// history in comments above it.
func getRule(ctx context.Context, c *apiClient, id string, asJSON bool, stdout io.Writer) error {
	var raw []byte
	if _, err := c.do(ctx, http.MethodGet, rulePath(id, ""), nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	var s ruleState
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decoding rule: %w", err)
	}
	fmt.Fprintf(stdout, "# rule %s: version %d, %s, changed %s\n", id, s.Version, s.state(), s.UpdatedAt.Format(time.RFC3339))
	if len(s.Versions) > 0 {
		versions := make([]string, len(s.Versions))
		for i, v := range s.Versions {
			versions[i] = fmt.Sprintf("%d (%s)", v.Version, v.CreatedAt.Format(time.RFC3339))
		}
		fmt.Fprintf(stdout, "# versions: %s\n", strings.Join(versions, ", "))
	}
	y, err := ruleyaml.Ordered(s.Rule, "version")
	if err != nil {
		return err
	}
	_, err = stdout.Write(y)
	return err
}

func setRuleActive(ctx context.Context, c *apiClient, id, action string, stdout io.Writer) error {
	var s ruleState
	if _, err := c.do(ctx, http.MethodPost, rulePath(id, action), nil, &s); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rule %s: %s (version %d)\n", id, s.state(), s.Version)
	return nil
}

func dryRunRule(ctx context.Context, c *apiClient, id string, since time.Duration, asJSON bool, stdout io.Writer) error {
	var raw []byte
	path := rulePath(id, "dry-run") + "?since=" + url.QueryEscape(since.String())
	if _, err := c.do(ctx, http.MethodPost, path, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	var rep replay.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("decoding report: %w", err)
	}
	printReport(stdout, rep)
	return nil
}

// printReport writes a dry run's report for people.
func printReport(w io.Writer, rep replay.Report) {
	const at = "2006-01-02 15:04 MST"
	fmt.Fprintf(w, "dry run of rule %s, version %d, over %s to %s: %d events\n",
		rep.RuleID, rep.Version, rep.From.Format(at), rep.Until.Format(at), rep.Events)
	fmt.Fprintf(w, "offers it would have issued: %d\n", rep.Offers)
	if len(rep.ByTier) > 0 {
		fmt.Fprintf(w, "  by tier:     %s\n", counts(rep.ByTier, func(t int) string { return fmt.Sprintf("tier %d:", t) }))
	}
	if len(rep.ByChannel) > 0 {
		fmt.Fprintf(w, "  by channel:  %s\n", counts(rep.ByChannel, func(c string) string { return c + ":" }))
	}
	if len(rep.NoOffer) > 0 {
		fmt.Fprintln(w, "crossings without an offer:")
		for _, tier := range sortedKeys(rep.NoOffer) {
			fmt.Fprintf(w, "  tier %d: %s\n", tier, counts(rep.NoOffer[tier], func(r string) string { return r }))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rep.Sample) > 0 {
		fmt.Fprintln(tw, "sample offers:")
		for _, o := range rep.Sample {
			fmt.Fprintf(tw, "  fan %s\ttier %d\tindex %g\t%s\t%s\tevent %s\n", o.FanID, o.Tier, o.Index,
				o.At.Format(at), cmp.Or(o.Channel, "no channel"), o.EventID)
		}
	}
	if len(rep.Missed) > 0 {
		fmt.Fprintln(tw, "crossings it would have missed:")
		for _, m := range rep.Missed {
			reason := m.Reason
			if m.Detail != "" {
				reason += " (" + m.Detail + ")"
			}
			fmt.Fprintf(tw, "  fan %s\ttier %d\tindex %g\t%s\n", m.FanID, m.Tier, m.Index, reason)
		}
	}
	_ = tw.Flush()
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// counts writes a map of counts as "name n, …", largest first.
func counts[K cmp.Ordered](m map[K]int, name func(K) string) string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b K) int { return cmp.Compare(m[b], m[a]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", name(k), m[k])
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
