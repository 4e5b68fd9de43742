package offers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"sigs.k8s.io/yaml"
)

// templated is testRule with templates and every channel.
func templated(t Templates) Rule {
	r := testRule()
	r.Channels = []Channel{ChannelPush, ChannelSMS, ChannelEmail}
	r.Templates = &t
	return r
}

// problems returns a rule's problems, one a line.
func problems(r Rule) []string {
	err := r.Validate()
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestDefaultTemplatesValidate(t *testing.T) {
	if p := problems(templated(Templates{})); p != nil {
		t.Fatalf("empty templates (the built-in ones) refused: %q", p)
	}
	d := DefaultTemplates()
	if p := problems(templated(d)); p != nil {
		t.Fatalf("the built-in templates, written out, refused: %q", p)
	}
	if p := problems(testRule()); p != nil {
		t.Fatalf("a rule without templates refused: %q", p)
	}
}

func TestTemplateProblemsAreListedTogetherWithTheirFields(t *testing.T) {
	r := templated(Templates{
		SMS:          `{{.Perfomer}} {{.Link}}`,
		EmailSubject: `Tickets for {{.Show`,
		EmailText:    `Hi {{.FanName}}, enjoy {{.Show}}.`,
		EmailHTML:    `<p>{{.Link}}</p>{{if eq .Tier 9}}<p>{{.Secret}}</p>{{end}}`,
		PushTitle:    `{{index .Show 0}}`,
		PushBody:     `{{with .PresaleCode}}Code {{.}} for {{.Show}}{{end}}`,
		PushLink:     `see {{.Show}}`,
	})
	got := problems(r)
	want := []string{
		"templates.sms: 1:3: unknown variable .Perfomer (use FanName, Performer, Show, ShowDate, Perks, Tier, Link, Token, Expires, PresaleCode, UnsubscribeLink)",
		"templates.email_subject: 1: unclosed action",
		"templates.email_text: must include {{.Link}}, the offer's link",
		"templates.email_text: must include {{.UnsubscribeLink}}, the one-click unsubscribe link",
		"templates.email_html: 1:39: unknown variable .Secret (use FanName, Performer, Show, ShowDate, Perks, Tier, Link, Token, Expires, PresaleCode, UnsubscribeLink)",
		"templates.push_title: 1:3: function \"index\" is not available",
		"templates.push_body: 1:39: inside {{with}}, dot is its value: write $.Show",
		"templates.push_link: must be a URL with a scheme, built on {{.Link}} or {{.Token}}",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Template problems come with the rule's others.
	r.Lifetime = 0
	if p := problems(r); len(p) != len(want)+1 || p[0] != "lifetime: must be positive" {
		t.Fatalf("problems with a rule's other problems: %q", p)
	}
}

func TestTemplatesMustCarryTheirLinksInEveryCase(t *testing.T) {
	// The link is there for tier 1 only: tier 2's text would go without it.
	got := problems(templated(Templates{
		SMS:       `Offer! {{if eq .Tier 1}}{{.Link}}{{end}}`,
		EmailHTML: `<a href="{{.Link}}">Claim</a> {{if .PresaleCode}}<a href="{{.UnsubscribeLink}}">Unsubscribe</a>{{end}}`,
	}))
	want := []string{
		"templates.sms: must include {{.Link}}, the offer's link",
		"templates.email_html: must include {{.UnsubscribeLink}}, the one-click unsubscribe link",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %q, want %q", got, want)
	}
}

func TestHTMLTemplatesAreEscapedAndCheckedWhenSaved(t *testing.T) {
	// An attribute left open only shows when html/template escapes the
	// template, on its first execution: the check executes it.
	got := problems(templated(Templates{EmailHTML: `<p>{{.UnsubscribeLink}}</p><a href="{{.Link}}`}))
	if len(got) != 1 || !strings.HasPrefix(got[0], "templates.email_html: ") || !strings.Contains(got[0], "non-text context") {
		t.Fatalf("problems %q", got)
	}
	tpl := &Templates{EmailHTML: `<p>Hi {{.FanName}}</p><a href="{{.Link}}">go</a> <a href="{{.UnsubscribeLink}}">stop</a>`}
	_, _, html, err := tpl.RenderEmail(MessageData{FanName: `<script>alert(1)</script>`, Link: "https://c.example/o/t", UnsubscribeLink: "https://c.example/u/x"})
	if err != nil || strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
		t.Fatalf("a fan's name in HTML is not escaped: %q, %v", html, err)
	}
}

func TestTextsOverTheirSegmentLimitAreRefused(t *testing.T) {
	long := strings.Repeat("Big news! ", 20) + "{{.Link}}" // 200 + 128 septets: 3 segments
	got := problems(templated(Templates{SMS: long}))
	want := "templates.sms: the text takes 3 segments with the longest values (tier 1: 328 GSM-7 units), more than sms_max_segments 2"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("problems %q, want %q", got, want)
	}
	if p := problems(templated(Templates{SMS: long, SMSMaxSegments: 3})); p != nil {
		t.Fatalf("a text within a raised limit refused: %q", p)
	}
	// One emoji makes the whole text UCS-2: 70 units a segment, 67 once split.
	got = problems(templated(Templates{SMS: "🎟 {{.Performer}}: {{.Link}}"}))
	want = `templates.sms: the text takes 3 segments with the longest values (tier 1: 163 UCS-2 units, UCS-2 because of '🎟'), more than sms_max_segments 2`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("problems %q, want %q", got, want)
	}
	// The worst tier is the one with the longest perks.
	r := templated(Templates{SMS: `{{.Perks}} {{.Link}}`, SMSMaxSegments: 1})
	r.Tiers[1].Perks = []string{"presale", "section:Floor A", "merch:Tour poster"}
	if p := problems(r); len(p) != 1 || !strings.Contains(p[0], "(tier 2: ") {
		t.Fatalf("problems %q", p)
	}
	for _, n := range []int{-1, 11} {
		if p := problems(templated(Templates{SMSMaxSegments: n})); len(p) != 1 || !strings.HasPrefix(p[0], "templates.sms_max_segments: between 1 and 10") {
			t.Fatalf("sms_max_segments %d: %q", n, p)
		}
	}
}

func TestTheBuiltInTextCountsOnlyWhenTheRuleTexts(t *testing.T) {
	r := templated(Templates{EmailSubject: "Your offer for {{.Show}}"})
	r.Tiers[1].Perks = []string{"presale", "section:Floor A", "merch:Signed tour poster"}
	p := problems(r)
	if len(p) != 1 || !strings.HasPrefix(p[0], "templates.sms: the built-in text (set templates.sms, or raise templates.sms_max_segments) takes 3 segments") {
		t.Fatalf("problems %q", p)
	}
	r.Channels = []Channel{ChannelEmail}
	if p := problems(r); p != nil {
		t.Fatalf("a rule that sends no text refused for its text: %q", p)
	}
}

func TestTemplatesRoundTripThroughJSON(t *testing.T) {
	r := templated(Templates{SMS: "{{.Show}} {{.Link}}", SMSMaxSegments: 1, PushLink: "streamly://offers/{{.Token}}"})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"templates":{"sms":"{{.Show}} {{.Link}}","sms_max_segments":1,"push_link":"streamly://offers/{{.Token}}"}`)) {
		t.Fatalf("encoded %s", b)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Templates, r.Templates) {
		t.Fatalf("decoded %+v, %v", back.Templates, err)
	}
	if b, _ := json.Marshal(testRule()); bytes.Contains(b, []byte("templates")) {
		t.Fatalf("a rule without templates writes them: %s", b)
	}
}

func TestRenderSMSSaysValuesTheWayTextsDo(t *testing.T) {
	tpl := &Templates{SMS: "Hi {{.FanName}}! {{.Performer}} at {{.Show}}: {{.Perks}}. {{.Link}}"}
	d := MessageData{FanName: "Zoë", Performer: "Sigur Rós", Show: "A Very Long Show Name That Goes On And On Forever",
		Perks: PerksText([]string{"presale", "section:Kór"}), Link: "https://c.example/o/k1.abc"}
	got, err := tpl.RenderSMS(d)
	want := "Hi Zoe! Sigur Ros at A Very Long Show Name That Goes On...: presale access, seats in section Kor. https://c.example/o/k1.abc"
	if err != nil || got != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
	if !IsGSM(got) {
		t.Fatal("the text is not GSM-7")
	}
	d.FanName = "李雷"
	if got, _ := tpl.RenderSMS(d); !strings.HasPrefix(got, "Hi there!") {
		t.Fatalf("a name GSM-7 cannot write: %q", got)
	}
	// A presale code is never cut: one that makes the text too long refuses it.
	tpl = &Templates{SMS: "{{.PresaleCode}} {{.Link}}", SMSMaxSegments: 1}
	d.PresaleCode = strings.Repeat("C", 64)
	d.Link = "https://c.example/o/" + strings.Repeat("t", 100)
	if _, err := tpl.RenderSMS(d); !errors.Is(err, ErrTooManySegments) {
		t.Fatalf("a text over its limit: %v", err)
	}
	// Without templates there is no limit.
	if _, err := (*Templates)(nil).RenderSMS(d); err != nil {
		t.Fatal(err)
	}
}

func TestUnsubscribeTokens(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, err := NewSigner("k1", map[string][]byte{"k1": k1})
	if err != nil {
		t.Fatal(err)
	}
	tok := old.UnsubscribeToken("Fan@Example.com")
	if tok != old.UnsubscribeToken("Fan@Example.com") || tok == old.UnsubscribeToken("fan2@example.com") {
		t.Fatal("one address, one token; two, two")
	}
	if strings.Contains(strings.ToLower(tok), "example") {
		t.Fatalf("the token shows the address: %s", tok)
	}
	rotated, err := NewSigner("k2", map[string][]byte{"k1": k1, "k2": k2})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.VerifyUnsubscribe(tok); err != nil || got != "Fan@Example.com" {
		t.Fatalf("after rotation: %q, %v", got, err)
	}
	if !strings.HasPrefix(rotated.UnsubscribeToken("a@b.c"), "k2.") {
		t.Fatal("the rotated signer does not seal with the new key")
	}
	sealed, err := base64.RawURLEncoding.DecodeString(tok[3:])
	if err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)/2] ^= 1
	forged := "k1." + base64.RawURLEncoding.EncodeToString(sealed)
	offer := old.Token(uuid.New(), testRule().IssueFrom)
	for token, want := range map[string]error{
		string(forged):                  ErrTokenSignature,
		"k2" + tok[2:]:                  ErrTokenSignature, // the key id is bound to the seal
		"k9" + tok[2:]:                  ErrTokenUnknownKey,
		"k1":                            ErrTokenMalformed,
		"k1.!!!":                        ErrTokenMalformed,
		"k1.AAAA":                       ErrTokenMalformed,
		offer:                           ErrTokenMalformed, // an offer token is not an unsubscribe token
		"k1." + strings.Repeat("A", 60): ErrTokenSignature,
	} {
		if _, err := rotated.VerifyUnsubscribe(token); !errors.Is(err, want) {
			t.Errorf("VerifyUnsubscribe(%q) = %v, want %v", token, err, want)
		}
	}
}

// The README's templates example is valid for the README's rule.
func TestTheREADMETemplatesExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(after, start string) []byte {
		t.Helper()
		_, rest, ok := strings.Cut(string(readme), after)
		if ok {
			_, rest, ok = strings.Cut(rest, start)
		}
		body, _, closed := strings.Cut(rest, "```")
		if !ok || !closed {
			t.Fatalf("the README has no %q block after %q", start, after)
		}
		j, err := yaml.YAMLToJSON([]byte(strings.TrimPrefix(start, "```yaml\n") + body))
		if err != nil {
			t.Fatalf("the README's %q block: %v", start, err)
		}
		return j
	}
	var rules struct{ Rules []Rule }
	if err := json.Unmarshal(block("### Rules", "```yaml\nrules:"), &rules); err != nil || len(rules.Rules) == 0 {
		t.Fatalf("the README's rules: %v", err)
	}
	var example struct{ Templates *Templates }
	if err := json.Unmarshal(block("#### Templates", "```yaml\n    templates:"), &example); err != nil || example.Templates == nil {
		t.Fatalf("the README's templates: %v", err)
	}
	r := rules.Rules[0]
	r.Templates = example.Templates
	if err := r.Validate(); err != nil {
		t.Fatalf("the README's templates on its rule: %v", err)
	}
	if !slices.Contains(r.Channels, ChannelSMS) || r.Templates.SMS == "" || r.Templates.PushLink == "" {
		t.Fatalf("the example no longer shows texts: %+v", r)
	}
}

// Parsed templates are kept by their source: an edited template renders its
// new text at once, the same source is parsed once, and renders in parallel
// share the parsed template safely.
func TestRenderKeepsParsedTemplatesBySource(t *testing.T) {
	d := MessageData{FanName: "Ada", Link: "https://crescendo.example/o/t"}
	first := &Templates{SMS: "First {{.FanName}} {{.Link}}"}
	if got, err := first.RenderSMS(d); err != nil || got != "First Ada https://crescendo.example/o/t" {
		t.Fatalf("rendered %q, %v", got, err)
	}
	before := parsed.size()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := first.RenderSMS(d); err != nil || got != "First Ada https://crescendo.example/o/t" {
				t.Errorf("rendered %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if after := parsed.size(); after != before {
		t.Fatalf("rendering a parsed source again added %d entries", after-before)
	}
	edited := &Templates{SMS: "Edited {{.FanName}} {{.Link}}"}
	if got, err := edited.RenderSMS(d); err != nil || got != "Edited Ada https://crescendo.example/o/t" {
		t.Fatalf("the edited template rendered %q, %v", got, err)
	}
	if _, err := (&Templates{SMS: "{{.Nope"}).RenderSMS(d); err == nil {
		t.Fatal("a broken template rendered")
	}
}
