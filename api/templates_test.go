package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/store"
)

func TestRuleTemplatesAreCheckedWhenSavedAndShownBack(t *testing.T) {
	d := newRuleDesk(t, nil)
	mkt := d.a[store.RoleMarketer]

	body := ruleBody("a")
	body["channels"] = []string{"sms", "email", "push"}
	body["templates"] = map[string]any{
		"sms":        "{{.FanName}}: {{.Perks}} at {{.Shwo}}",
		"email_text": "Hi {{.FanName}}, {{.Link}}",
		"email_html": `<a href="{{.Link}}">Claim</a> <a href="{{.UnsubscribeLink}}">Stop</a> {{if`,
		"push_link":  "streamly://offers/{{.Token}}",
	}
	r := d.call(t, http.StatusUnprocessableEntity, "PUT", "/v1/rules/texts", mkt, body)
	var inv struct {
		Problems []struct{ Field, Reason string }
	}
	if err := json.Unmarshal(r.body, &inv); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Problems {
		got = append(got, p.Field+": "+strings.SplitN(p.Reason, " (use", 2)[0])
	}
	want := []string{
		"templates.sms: 1:31: unknown variable .Shwo",
		"templates.email_text: must include {{.UnsubscribeLink}}, the one-click unsubscribe link",
		"templates.email_html: 1: unclosed action",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %q, want %q", got, want)
	}

	// A member templates do not have is a 400 like any other.
	body["templates"] = map[string]any{"sms": "{{.Link}}", "sms_segments": 3}
	if detail := d.call(t, http.StatusBadRequest, "PUT", "/v1/rules/texts", mkt, body).json(t)["detail"].(string); !strings.Contains(detail, "templates.sms_segments") {
		t.Fatalf("unknown fields: %s", detail)
	}

	templates := map[string]any{
		"sms":              "{{.Performer}} at {{.Show}} {{.ShowDate}}: {{.Perks}}. {{.Link}}",
		"sms_max_segments": 2.0,
		"email_subject":    "{{.FanName}}, tier {{.Tier}} for {{.Show}}",
		"push_link":        "streamly://offers/{{.Token}}",
	}
	body["templates"] = templates
	d.call(t, http.StatusCreated, "PUT", "/v1/rules/texts", mkt, body)
	shown := d.call(t, http.StatusOK, "GET", "/v1/rules/texts", mkt, nil).rule(t).Rule
	if !reflect.DeepEqual(shown["templates"], templates) {
		t.Fatalf("templates shown %v, want %v", shown["templates"], templates)
	}
	if got := d.call(t, http.StatusOK, "PUT", "/v1/rules/texts", mkt, shown).rule(t); *got.Changed {
		t.Fatal("the rule as shown, sent back, changed it")
	}
}
