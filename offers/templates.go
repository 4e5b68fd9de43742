package offers

import (
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
)

// Templates are a rule's own message content (F19): Go templates over a fixed
// set of variables (see MessageData). An empty part takes the built-in
// default's (DefaultTemplates). Text parts use text/template; the HTML email
// uses html/template, which escapes every value for where it appears.
//
// A rule without templates sends the built-in messages with no limit on the
// texts' length; a rule with templates, even empty ones, has its own parts
// checked when it is saved, and its texts, its own or the built-in one,
// limited to SMSMaxSegments.
type Templates struct {
	// SMS is the text message; it must include {{.Link}}.
	SMS string `json:"sms,omitempty"`
	// SMSMaxSegments bounds the text's segments (1 to 10; 0: 2), checked
	// when the rule is saved with the longest values the variables take in
	// a text, and again when it is sent.
	SMSMaxSegments int `json:"sms_max_segments,omitempty"`
	// EmailSubject is the subject line, one line of plain text.
	EmailSubject string `json:"email_subject,omitempty"`
	// EmailText and EmailHTML are the email's two bodies; each must include
	// {{.Link}} and {{.UnsubscribeLink}}.
	EmailText string `json:"email_text,omitempty"`
	EmailHTML string `json:"email_html,omitempty"`
	// PushTitle and PushBody are the in-app notification's text; PushLink is
	// where tapping it goes, a URL (an app's deep link) built on {{.Link}}
	// or {{.Token}}.
	PushTitle string `json:"push_title,omitempty"`
	PushBody  string `json:"push_body,omitempty"`
	PushLink  string `json:"push_link,omitempty"`
}

// MessageData is what a template can say about an offer, and all it can:
// {{.FanName}} and the others. Every value is text but Tier.
type MessageData struct {
	// FanName is the fan's first name, "there" when it is not known.
	FanName string
	// Performer and Show are their names; ShowDate is the show's day, as
	// "Sat 3 Oct 2026".
	Performer string
	Show      string
	ShowDate  string
	// Perks are the tier's perks in words: "presale access, seats in section
	// Floor A".
	Perks string
	// Tier is the offer's tier, from 1.
	Tier int
	// Link is the offer's link; Token is its last part, what a partner app
	// redeems the offer with.
	Link  string
	Token string
	// Expires is when the offer ends, in the fan's time zone: "Mar 3 20:00 GMT".
	Expires string
	// PresaleCode is the code from the show's pool, "" when it has none.
	PresaleCode string
	// UnsubscribeLink stops email to the fan's address in one click.
	UnsubscribeLink string
}

// TemplateVariables names the variables templates can use, in MessageData's order.
var TemplateVariables = func() []string {
	var names []string
	for f := range reflect.TypeFor[MessageData]().Fields() {
		names = append(names, f.Name)
	}
	return names
}()

// DefaultSMSMaxSegments is a rule's text limit when its templates set none;
// MaxSMSSegments is the most a rule may allow (Twilio takes 1,600 characters).
const (
	DefaultSMSMaxSegments = 2
	MaxSMSSegments        = 10
)

// The longest values a text is checked with when a rule is saved. When it is
// sent, names are cut to them ("..."), so the check holds; a presale code or
// a link longer than this is not cut, and a text it pushes over the rule's
// limit is not sent (ErrTooManySegments).
const (
	smsMaxFanName     = 20
	smsMaxPerformer   = 30
	smsMaxShow        = 40
	smsMaxPresaleCode = 20
	smsMaxLink        = 128
)

// ErrTooManySegments marks a text that would take more segments than its
// rule allows.
var ErrTooManySegments = errors.New("too many SMS segments")

// defaults are the built-in messages.
var defaults = Templates{
	SMS:          `{{.Performer}}: {{.Perks}} for {{.Show}}{{if .PresaleCode}} (code {{.PresaleCode}}){{end}}. Ends {{.Expires}} {{.Link}}`,
	EmailSubject: `{{.FanName}}, an offer for {{.Show}}`,
	EmailText: `Hi {{.FanName}},

You are one of {{.Performer}}'s most devoted listeners, so here is something for {{.Show}}: {{.Perks}}{{if .PresaleCode}} (presale code {{.PresaleCode}}){{end}}.

Claim it before {{.Expires}}: {{.Link}}
{{if .UnsubscribeLink}}
No more offers by email: {{.UnsubscribeLink}}
{{end}}`,
	EmailHTML: `<!doctype html>
<html><body>
<p>Hi {{.FanName}},</p>
<p>You are one of {{.Performer}}'s most devoted listeners, so here is something for <strong>{{.Show}}</strong>: {{.Perks}}{{if .PresaleCode}} (presale code <strong>{{.PresaleCode}}</strong>){{end}}.</p>
<p><a href="{{.Link}}">Claim your offer</a> before {{.Expires}}.</p>
{{if .UnsubscribeLink}}<p style="font-size:small"><a href="{{.UnsubscribeLink}}">No more offers by email</a></p>
{{end}}</body></html>`,
	PushTitle: `{{.Performer}}: {{.Show}}`,
	PushBody:  `Unlocked for you: {{.Perks}}{{if .PresaleCode}} (presale code {{.PresaleCode}}){{end}}. Ends {{.Expires}}.`,
	PushLink:  `{{.Link}}`,
}

// DefaultTemplates returns the built-in messages, which a rule's empty
// template parts take.
func DefaultTemplates() Templates { return defaults }

// templatePart is one of a rule's templates.
type templatePart struct {
	field string // its JSON name
	html  bool
	src   func(*Templates) string
}

var (
	partSMS       = templatePart{"sms", false, func(t *Templates) string { return t.SMS }}
	partSubject   = templatePart{"email_subject", false, func(t *Templates) string { return t.EmailSubject }}
	partText      = templatePart{"email_text", false, func(t *Templates) string { return t.EmailText }}
	partHTML      = templatePart{"email_html", true, func(t *Templates) string { return t.EmailHTML }}
	partPushTitle = templatePart{"push_title", false, func(t *Templates) string { return t.PushTitle }}
	partPushBody  = templatePart{"push_body", false, func(t *Templates) string { return t.PushBody }}
	partPushLink  = templatePart{"push_link", false, func(t *Templates) string { return t.PushLink }}
	templateParts = []templatePart{partSMS, partSubject, partText, partHTML, partPushTitle, partPushBody, partPushLink}
)

// source is the part's template in t, or the default's when t has none.
func (p templatePart) source(t *Templates) (src string, own bool) {
	if t != nil {
		if s := p.src(t); s != "" {
			return s, true
		}
	}
	return p.src(&defaults), false
}

// executor is a parsed text or HTML template.
type executor interface {
	Execute(w io.Writer, data any) error
}

// parse parses src as the part's template; check also refuses what could
// fail only once a fan is messaged (see treeCheck).
func (p templatePart) parse(src string, check bool) (executor, []error) {
	var ex executor
	var trees []*parse.Tree
	var err error
	if p.html {
		var t *htmltemplate.Template
		if t, err = htmltemplate.New(p.field).Option("missingkey=error").Parse(src); err == nil {
			ex = t
			for _, d := range t.Templates() {
				trees = append(trees, d.Tree)
			}
		}
	} else {
		var t *texttemplate.Template
		if t, err = texttemplate.New(p.field).Option("missingkey=error").Parse(src); err == nil {
			ex = t
			for _, d := range t.Templates() {
				trees = append(trees, d.Tree)
			}
		}
	}
	if err != nil {
		return nil, []error{p.problem(err)}
	}
	if !check {
		return ex, nil
	}
	if len(trees) > 1 {
		return nil, []error{fmt.Errorf("templates.%s: {{define}}, {{block}} and {{template}} are not supported", p.field)}
	}
	w := &treeCheck{part: p, tree: trees[0]}
	w.node(trees[0].Root, true)
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	return ex, nil
}

// problem turns a template package's error into a field path and position:
// "template: sms:1:5: …" reads "templates.sms: 1:5: …".
func (p templatePart) problem(err error) error {
	msg := err.Error()
	for _, prefix := range []string{"template: " + p.field + ":", "html/template:" + p.field + ":", "html/template: " + p.field + ":"} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	msg = oneBased(strings.Replace(msg, fmt.Sprintf("executing %q at ", p.field), "", 1))
	return fmt.Errorf("templates.%s: %s", p.field, msg)
}

func (p templatePart) exec(ex executor, d MessageData) (string, error) {
	var b strings.Builder
	if err := ex.Execute(&b, d); err != nil {
		return "", p.problem(err)
	}
	return b.String(), nil
}

// render parses and executes the part of t (or the default) for d.
func (p templatePart) render(t *Templates, d MessageData) (string, error) {
	src, _ := p.source(t)
	ex, err := parsed.get(p, src)
	if err != nil {
		return "", fmt.Errorf("rendering %w", err)
	}
	out, err := p.exec(ex, d)
	if err != nil {
		return "", fmt.Errorf("rendering %w", err)
	}
	return out, nil
}

// parseCache keeps parsed templates by part and source: every offer of a
// rule renders the same few sources, and parsing them anew for each message
// cost more CPU than the rest of a delivery's rendering. Templates are safe
// to execute concurrently. The cache is a pure memo of source text, so it
// holds no state that could go stale; it is emptied when it grows past
// maxParsed entries, which bounds it under any number of rule edits.
type parseCache struct {
	mu sync.RWMutex
	m  map[parseKey]executor
}

type parseKey struct{ field, src string }

const maxParsed = 4096

var parsed = &parseCache{m: map[parseKey]executor{}}

// get returns src parsed as p's template; parse errors are not kept.
func (c *parseCache) get(p templatePart, src string) (executor, error) {
	k := parseKey{p.field, src}
	c.mu.RLock()
	ex, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return ex, nil
	}
	ex, errs := p.parse(src, false)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	c.mu.Lock()
	if len(c.m) >= maxParsed {
		clear(c.m)
	}
	c.m[k] = ex
	c.mu.Unlock()
	return ex, nil
}

func (c *parseCache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// templateFuncs are the built-in functions a template may call: none of them
// fails on the variables' values. call, index and slice are left out: they
// can fail on a value, which would only show when a fan is messaged.
var templateFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "len": true, "print": true, "printf": true, "println": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true, "html": true, "js": true, "urlquery": true,
}

// treeCheck walks a parsed template and refuses variables MessageData does
// not have and constructs that could fail only when executed with a fan's
// values, so that a template that saves is one that renders.
type treeCheck struct {
	part templatePart
	tree *parse.Tree
	errs []error
}

func (w *treeCheck) fail(n parse.Node, format string, args ...any) {
	loc, _ := w.tree.ErrorContext(n)
	loc = oneBased(strings.TrimPrefix(loc, w.part.field+":") + ":")
	w.errs = append(w.errs, fmt.Errorf("templates.%s: %s %s", w.part.field, loc, fmt.Sprintf(format, args...)))
}

// positionPrefix is the "line:column:" the template packages start a
// message with; their columns count from 0.
var positionPrefix = regexp.MustCompile(`^(\d+):(\d+):`)

// oneBased counts the column of msg's leading "line:column:" from 1, as
// conditions' positions do.
func oneBased(msg string) string {
	m := positionPrefix.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	col, _ := strconv.Atoi(m[2])
	return fmt.Sprintf("%s:%d:", m[1], col+1) + msg[len(m[0]):]
}

func (w *treeCheck) variable(n parse.Node, name string) {
	if !slices.Contains(TemplateVariables, name) {
		w.fail(n, "unknown variable .%s (use %s)", name, strings.Join(TemplateVariables, ", "))
	}
}

// node checks n; data tells whether dot is the MessageData there (outside
// {{with}}).
func (w *treeCheck) node(n parse.Node, data bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.node(c, data)
		}
	case *parse.ActionNode:
		w.node(n.Pipe, data)
	case *parse.IfNode:
		w.node(n.Pipe, data)
		w.node(n.List, data)
		w.node(n.ElseList, data)
	case *parse.WithNode:
		w.node(n.Pipe, data)
		w.node(n.List, false)
		w.node(n.ElseList, data)
	case *parse.RangeNode:
		w.fail(n, "{{range}} is not supported: no variable is a list")
	case *parse.TemplateNode:
		w.fail(n, "{{template}} is not supported")
	case *parse.BreakNode, *parse.ContinueNode:
		w.fail(n, "{{break}} and {{continue}} are not supported")
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			for _, arg := range c.Args {
				w.node(arg, data)
			}
		}
	case *parse.IdentifierNode:
		if !templateFuncs[n.Ident] {
			w.fail(n, "function %q is not available", n.Ident)
		}
	case *parse.FieldNode:
		switch {
		case !data:
			w.fail(n, "inside {{with}}, dot is its value: write $.%s", strings.Join(n.Ident, "."))
		case len(n.Ident) > 1:
			w.fail(n, "%s has no fields", n)
		default:
			w.variable(n, n.Ident[0])
		}
	case *parse.VariableNode:
		switch {
		case n.Ident[0] == "$" && len(n.Ident) == 2:
			w.variable(n, n.Ident[1])
		case len(n.Ident) > 1:
			w.fail(n, "%s: values have no fields", n)
		}
	case *parse.ChainNode:
		w.fail(n, "%s: values have no fields", n)
	}
}

// PerksText says a tier's perks the way messages do: "presale access, seats
// in section Floor A".
func PerksText(perks []string) string {
	texts := make([]string, len(perks))
	for i, p := range perks {
		texts[i] = PerkText(p)
	}
	return strings.Join(texts, ", ")
}

// maxSegments is the text limit t sets; 0 for none (a rule without templates).
func (t *Templates) maxSegments() int {
	switch {
	case t == nil:
		return 0
	case t.SMSMaxSegments == 0:
		return DefaultSMSMaxSegments
	}
	return t.SMSMaxSegments
}

// smsValues is d as a text says it: letters GSM-7 lacks written with the
// closest it has, so a name does not make the whole text UCS-2 (a first name
// that still needs UCS-2 reads "there"), and names cut to the lengths a
// rule's texts are checked with. Codes and links are kept exactly.
func smsValues(d MessageData) MessageData {
	d.FanName = ToGSM(d.FanName)
	if !IsGSM(d.FanName) {
		d.FanName = "there"
	}
	d.FanName = clipUnits(d.FanName, smsMaxFanName)
	d.Performer = clipUnits(ToGSM(d.Performer), smsMaxPerformer)
	d.Show = clipUnits(ToGSM(d.Show), smsMaxShow)
	d.Perks = ToGSM(d.Perks)
	return d
}

// RenderSMS renders the text message of t (nil: the built-in one) for d, with the
// values as smsValues says them. A text over t's segment limit is an error
// wrapping ErrTooManySegments.
func (t *Templates) RenderSMS(d MessageData) (string, error) {
	out, err := partSMS.render(t, smsValues(d))
	if err != nil {
		return "", err
	}
	if limit := t.maxSegments(); limit > 0 {
		if seg := CountSegments(out); seg.Segments > limit {
			return "", fmt.Errorf("rendering templates.sms: %w: %d in %s, the rule allows %d", ErrTooManySegments, seg.Segments, seg.Encoding, limit)
		}
	}
	return out, nil
}

// RenderEmail renders the email of t (nil: the built-in one) for d: its subject on
// one line, and its plain-text and HTML bodies.
func (t *Templates) RenderEmail(d MessageData) (subject, text, html string, err error) {
	out, err := t.renderParts(d, partSubject, partText, partHTML)
	if err != nil {
		return "", "", "", err
	}
	return strings.Join(strings.Fields(out[0]), " "), out[1], out[2], nil
}

// RenderPush renders the in-app notification of t (nil: the built-in one) for d.
func (t *Templates) RenderPush(d MessageData) (title, body, link string, err error) {
	out, err := t.renderParts(d, partPushTitle, partPushBody, partPushLink)
	if err != nil {
		return "", "", "", err
	}
	return out[0], out[1], strings.TrimSpace(out[2]), nil
}

// renderParts renders parts of t for d, stopping at the first that fails.
func (t *Templates) renderParts(d MessageData, parts ...templatePart) ([]string, error) {
	out := make([]string, len(parts))
	for i, p := range parts {
		var err error
		if out[i], err = p.render(t, d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Sample values templates are checked with: as long as a text cuts them to.
var (
	sampleToken = "k1." + strings.Repeat("t", smsMaxLink-len("https://crescendo.example/o/k1."))
	sampleLink  = "https://crescendo.example/o/" + sampleToken
	sampleUnsub = "https://crescendo.example/u/" + strings.Repeat("u", 100)
)

func pad(s string, n int) string { return s + strings.Repeat("x", max(0, n-len(s))) }

// samples are the values a rule's templates are checked with: for each tier,
// the longest values a text can carry, with a presale code and without.
func (r Rule) samples() []MessageData {
	var out []MessageData
	for i, t := range r.Tiers {
		d := MessageData{
			FanName: pad("Maximiliana", smsMaxFanName), Performer: pad("The Longest Performer", smsMaxPerformer),
			Show: pad("The Longest Show Name", smsMaxShow), ShowDate: "Wed 30 Sep 2026", Perks: PerksText(t.Perks),
			Tier: i + 1, Link: sampleLink, Token: sampleToken, Expires: "Sep 30 23:59 +0530",
			PresaleCode: strings.Repeat("C", smsMaxPresaleCode), UnsubscribeLink: sampleUnsub,
		}
		out = append(out, d)
		d.PresaleCode = ""
		out = append(out, d)
	}
	return out
}

// templateProblems reports every problem with the rule's templates, each
// prefixed with its field path: syntax, unknown variables, what a part must
// include, and texts longer than the rule allows.
func (r Rule) templateProblems() []error {
	if r.Templates == nil {
		return nil
	}
	// Rule sets are compiled again on every refresh, and executing every
	// part for every tier takes a good part of a millisecond: the answer is
	// kept for what it depends on.
	perks := make([][]string, len(r.Tiers))
	for i, t := range r.Tiers {
		perks[i] = t.Perks
	}
	b, err := json.Marshal(struct {
		T     *Templates
		SMS   bool
		Perks [][]string
	}{r.Templates, slices.Contains(r.Channels, ChannelSMS), perks})
	if err != nil {
		return r.checkTemplates()
	}
	key := string(b)
	templateChecks.Lock()
	errs, ok := templateChecks.m[key]
	templateChecks.Unlock()
	if ok {
		return errs
	}
	errs = r.checkTemplates()
	templateChecks.Lock()
	if len(templateChecks.m) >= maxTemplateChecks {
		clear(templateChecks.m)
	}
	templateChecks.m[key] = errs
	templateChecks.Unlock()
	return errs
}

// templateChecks keeps the problems of the templates checked lately, by
// what they depend on; maxTemplateChecks bounds it.
var templateChecks = struct {
	sync.Mutex
	m map[string][]error
}{m: map[string][]error{}}

const maxTemplateChecks = 4096

// checkTemplates is templateProblems without the memo.
func (r Rule) checkTemplates() []error {
	t := r.Templates
	var errs []error
	if t.SMSMaxSegments < 0 || t.SMSMaxSegments > MaxSMSSegments {
		errs = append(errs, fmt.Errorf("templates.sms_max_segments: between 1 and %d, got %d", MaxSMSSegments, t.SMSMaxSegments))
	}
	samples := r.samples()
	for _, p := range templateParts {
		src, own := p.source(t)
		if !own && (p.field != partSMS.field || !slices.Contains(r.Channels, ChannelSMS)) {
			continue // a built-in part is known to render
		}
		ex, perrs := p.parse(src, own)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		if err := p.checkRendered(ex, samples, own, t.maxSegments()); err != nil {
			errs = append(errs, err...)
		}
	}
	return errs
}

// checkRendered executes a part with every sample and checks what it says.
func (p templatePart) checkRendered(ex executor, samples []MessageData, own bool, limit int) []error {
	var errs []error
	need := func(ok bool, what string) {
		if !ok && !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), what) }) {
			errs = append(errs, fmt.Errorf("templates.%s: %s", p.field, what))
		}
	}
	worst, worstTier := Segments{}, 0
	for _, d := range samples {
		if p.field == partSMS.field {
			d = smsValues(d)
		}
		out, err := p.exec(ex, d)
		if err != nil {
			return append(errs, err)
		}
		switch p.field {
		case partSMS.field:
			need(strings.Contains(out, d.Link), "must include {{.Link}}, the offer's link")
			if seg := CountSegments(out); seg.Segments > worst.Segments {
				worst, worstTier = seg, d.Tier
			}
		case partText.field, partHTML.field:
			need(strings.Contains(out, d.Link), "must include {{.Link}}, the offer's link")
			need(strings.Contains(out, d.UnsubscribeLink), "must include {{.UnsubscribeLink}}, the one-click unsubscribe link")
		case partSubject.field:
			need(strings.TrimSpace(out) != "", "must not be empty")
		case partPushLink.field:
			u, err := url.Parse(strings.TrimSpace(out))
			need(err == nil && u.Scheme != "" && (strings.Contains(out, d.Link) || strings.Contains(out, d.Token)),
				"must be a URL with a scheme, built on {{.Link}} or {{.Token}}")
		}
	}
	if p.field == partSMS.field && limit > 0 && worst.Segments > limit {
		why := ""
		if worst.Encoding == EncodingUCS2 {
			why = fmt.Sprintf(", UCS-2 because of %q", worst.NonGSM)
		}
		what := "the text"
		if !own {
			what = "the built-in text (set templates.sms, or raise templates.sms_max_segments)"
		}
		errs = append(errs, fmt.Errorf("templates.sms: %s takes %d segments with the longest values (tier %d: %d %s units%s), more than sms_max_segments %d",
			what, worst.Segments, worstTier, worst.Units, worst.Encoding, why, limit))
	}
	return errs
}
