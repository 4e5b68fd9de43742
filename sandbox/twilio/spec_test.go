package twilio_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/sandbox/oaspec"
)

const (
	specListPath  = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
	specFetchPath = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
)

func loadTwilioSpec(t *testing.T) *oaspec.Doc {
	t.Helper()
	doc, err := oaspec.Load(oaspec.TwilioMessages)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func decodeForSpec(t *testing.T, raw []byte) any {
	t.Helper()
	v, err := oaspec.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func requireValid(t *testing.T, doc *oaspec.Doc, s oaspec.Schema, v any, what string) {
	t.Helper()
	for _, err := range doc.Validate(s, v, oaspec.Mode{Closed: true}) {
		t.Errorf("%s violates the spec: %v", what, err)
	}
}

// The sandbox serves exactly the operations it claims, under the spec's
// paths.
func TestOperationsExistInSpec(t *testing.T) {
	doc := loadTwilioSpec(t)
	for _, op := range []struct{ path, method, id string }{
		{specListPath, "post", "CreateMessage"},
		{specListPath, "get", "ListMessage"},
		{specFetchPath, "get", "FetchMessage"},
	} {
		o, err := doc.Operation(op.path, op.method)
		if err != nil {
			t.Fatal(err)
		}
		if o["operationId"] != op.id {
			t.Errorf("%s %s is %v in the spec, want %s", op.method, op.path, o["operationId"], op.id)
		}
	}
	if _, err := doc.RequestSchema(specListPath, "post", "application/x-www-form-urlencoded"); err != nil {
		t.Errorf("create is not form-encoded in the spec: %v", err)
	}
}

func TestResponsesMatchSpec(t *testing.T) {
	doc := loadTwilioSpec(t)
	created201, err := doc.ResponseSchema(specListPath, "post", "201", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	fetched200, err := doc.ResponseSchema(specFetchPath, "get", "200", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	list200, err := doc.ResponseSchema(specListPath, "get", "200", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	resource, err := doc.Component("api.v2010.account.message")
	if err != nil {
		t.Fatal(err)
	}
	declared := doc.Properties(resource)

	_, srv, _ := newSandbox(t)
	viaNumber := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	serviceForm := validForm()
	serviceForm.Del("From")
	serviceForm.Set("MessagingServiceSid", serviceSID)
	viaService := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, serviceForm, accountSID, authToken)
	mediaForm := validForm()
	mediaForm.Add("MediaUrl", "https://cdn.example.com/seat-map.png")
	withMedia := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, mediaForm, accountSID, authToken)

	for name, a := range map[string]answer{"from number": viaNumber, "messaging service": viaService, "media": withMedia} {
		if a.status != http.StatusCreated {
			t.Fatalf("%s: HTTP %d %s", name, a.status, a.raw)
		}
		requireValid(t, doc, created201, decodeForSpec(t, a.raw), "create ("+name+")")
		// Twilio always sends every property, null or not.
		var got []string
		for k := range a.body {
			got = append(got, k)
		}
		slices.Sort(got)
		if !reflect.DeepEqual(got, declared) {
			t.Errorf("create (%s) properties %v, spec declares %v", name, got, declared)
		}
	}
	if sid := withMedia.body["sid"].(string); !strings.HasPrefix(sid, "MM") || withMedia.body["num_media"] != "1" {
		t.Errorf("media message: sid %s num_media %v", sid, withMedia.body["num_media"])
	}

	fetched := do(t, t.Context(), http.MethodGet, srv.URL+viaNumber.body["uri"].(string), nil, accountSID, authToken)
	requireValid(t, doc, fetched200, decodeForSpec(t, fetched.raw), "fetch")

	for _, q := range []string{"", "?To=%2B14155550100&PageSize=1", "?DateSent%3E=2000-01-01&PageSize=2&Page=0"} {
		list := do(t, t.Context(), http.MethodGet, srv.URL+messagesPath+q, nil, accountSID, authToken)
		requireValid(t, doc, list200, decodeForSpec(t, list.raw), "list"+q)
		var got []string
		for k := range list.body {
			got = append(got, k)
		}
		slices.Sort(got)
		if want := doc.Properties(list200); !reflect.DeepEqual(got, want) {
			t.Errorf("list%s properties %v, spec declares %v", q, got, want)
		}
	}
}

// A schema check that cannot fail proves nothing: make sure it rejects what
// the spec forbids.
func TestSpecValidatorRejectsViolations(t *testing.T) {
	doc := loadTwilioSpec(t)
	resource, err := doc.Component("api.v2010.account.message")
	if err != nil {
		t.Fatal(err)
	}
	_, srv, _ := newSandbox(t)
	good := do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, validForm(), accountSID, authToken)
	for name, mutate := range map[string]func(map[string]any){
		"undeclared property": func(m map[string]any) { m["price_currency"] = "USD" },
		"status outside enum": func(m map[string]any) { m["status"] = "pending" },
		"sid pattern":         func(m map[string]any) { m["sid"] = "XX123" },
		"date format":         func(m map[string]any) { m["date_created"] = "2026-03-14T09:26:53Z" },
		"num_segments type":   func(m map[string]any) { m["num_segments"] = json.Number("1") },
		"non-nullable null":   func(m map[string]any) { m["direction"] = nil },
	} {
		t.Run(name, func(t *testing.T) {
			v := decodeForSpec(t, good.raw).(map[string]any)
			mutate(v)
			if errs := doc.Validate(resource, v, oaspec.Mode{Closed: true}); len(errs) == 0 {
				t.Fatal("validator accepted a violation")
			}
		})
	}
}

// formName maps a spec property name in snake case (as x-twilio conditional
// lists use) to its form parameter.
func formName(t *testing.T, props []string, snake string) string {
	t.Helper()
	for _, p := range props {
		if strings.EqualFold(p, strings.ReplaceAll(snake, "_", "")) {
			return p
		}
	}
	t.Fatalf("spec has no form parameter for %q", snake)
	return ""
}

func TestRequiredParametersMatchSpec(t *testing.T) {
	doc := loadTwilioSpec(t)
	req, err := doc.RequestSchema(specListPath, "post", "application/x-www-form-urlencoded")
	if err != nil {
		t.Fatal(err)
	}
	props := doc.Properties(req)
	if got := oaspec.Required(req); !reflect.DeepEqual(got, []string{"To"}) {
		t.Fatalf("spec's required list is %v; the sandbox enforces [To]", got)
	}

	// The form the tests send is itself valid per the spec.
	requireValid(t, doc, req, doc.FormToJSON(req, validForm()), "test form")

	_, srv, _ := newSandbox(t)
	post := func(form url.Values) answer {
		return do(t, t.Context(), http.MethodPost, srv.URL+messagesPath, form, accountSID, authToken)
	}
	for _, name := range oaspec.Required(req) {
		form := validForm()
		form.Del(name)
		if a := post(form); a.status != http.StatusBadRequest {
			t.Errorf("without required %s: HTTP %d", name, a.status)
		}
	}

	// x-twilio.conditional lists groups of which at least one is required.
	conditional, err := doc.Lookup("/paths/" + strings.ReplaceAll(specListPath, "/", "~1") + "/post/x-twilio/conditional")
	if err != nil {
		t.Fatal(err)
	}
	groups := conditional.([]any)
	if len(groups) != 2 {
		t.Fatalf("spec lists %d conditional groups, the sandbox enforces 2", len(groups))
	}
	alone := map[string]url.Values{
		"From":                {"From": {ourNumber}},
		"MessagingServiceSid": {"MessagingServiceSid": {serviceSID}},
		"Body":                {"Body": {"hi"}},
		"MediaUrl":            {"MediaUrl": {"https://cdn.example.com/a.png"}},
		"ContentSid":          {"ContentSid": {"HX0123456789abcdef0123456789abcdef"}},
	}
	for _, g := range groups {
		var members []string
		for _, snake := range g.([]any) {
			members = append(members, formName(t, props, snake.(string)))
		}
		base := validForm()
		for _, m := range members {
			base.Del(m)
		}
		if a := post(base); a.status != http.StatusBadRequest {
			t.Errorf("without any of %v: HTTP %d", members, a.status)
		}
		for _, m := range members {
			form := validForm()
			for _, other := range members {
				form.Del(other)
			}
			for k, v := range alone[m] {
				form[k] = v
			}
			requireValid(t, doc, req, doc.FormToJSON(req, form), "form with only "+m)
			if a := post(form); a.status != http.StatusCreated {
				t.Errorf("with only %s of %v: HTTP %d %s", m, members, a.status, a.raw)
			}
		}
	}
}

func TestPathAndQueryParametersMatchSpec(t *testing.T) {
	doc := loadTwilioSpec(t)
	list, err := doc.Operation(specListPath, "get")
	if err != nil {
		t.Fatal(err)
	}
	var query []string
	for _, p := range list["parameters"].([]any) {
		pm := p.(map[string]any)
		switch pm["in"] {
		case "query":
			query = append(query, pm["name"].(string))
		case "path":
			pattern := pm["schema"].(map[string]any)["pattern"].(string)
			if !regexp.MustCompile(pattern).MatchString(accountSID) {
				t.Errorf("test account %s does not match the spec's %s", accountSID, pattern)
			}
		}
	}
	slices.Sort(query)
	// The list filters the sandbox implements (see list.go).
	supported := []string{"DateSent", "DateSent<", "DateSent>", "From", "Page", "PageSize", "PageToken", "To"}
	if !reflect.DeepEqual(query, supported) {
		t.Errorf("spec query parameters %v, sandbox supports %v", query, supported)
	}
}
