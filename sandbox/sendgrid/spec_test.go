package sendgrid_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/crescendo-hq/crescendo/sandbox/oaspec"
	"github.com/crescendo-hq/crescendo/sandbox/sendgrid"
)

func loadSpec(t *testing.T, name string) *oaspec.Doc {
	t.Helper()
	doc, err := oaspec.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func requireValid(t *testing.T, doc *oaspec.Doc, s oaspec.Schema, raw []byte, what string) {
	t.Helper()
	v, err := oaspec.Decode(raw)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, err := range doc.Validate(s, v, oaspec.Mode{Closed: true}) {
		t.Errorf("%s violates the spec: %v", what, err)
	}
}

func TestMailSendRequestMatchesSpec(t *testing.T) {
	doc := loadSpec(t, oaspec.SendGridMailSend)
	req, err := doc.RequestSchema("/v3/mail/send", "post", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	// The body the tests send is itself valid per the spec.
	requireValid(t, doc, req, []byte(encode(t, validMail("o-1", "fan@example.com"))), "test mail")

	if got, want := oaspec.Required(req), []string{"personalizations", "from", "subject", "content"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("spec requires %v; the sandbox enforces %v", got, want)
	}

	_, srv, _ := newSandbox(t)
	rejects := func(t *testing.T, m map[string]any, field string) {
		t.Helper()
		a := send(t, srv, encode(t, m))
		if a.status != http.StatusBadRequest {
			t.Fatalf("HTTP %d, want 400", a.status)
		}
		if !strings.Contains(string(a.raw), `"field":"`+field+`"`) {
			t.Fatalf("400 does not name %s: %s", field, a.raw)
		}
	}

	// Every top-level required property, removed, is rejected and named.
	for _, name := range oaspec.Required(req) {
		t.Run("without "+name, func(t *testing.T) {
			m := validMail("o-1", "fan@example.com")
			delete(m, name)
			rejects(t, m, name)
		})
	}

	props := req["properties"].(map[string]any)
	nested := []struct {
		schema any
		remove func(m map[string]any, prop string)
		field  func(prop string) string
	}{
		{props["personalizations"].(map[string]any)["items"],
			func(m map[string]any, p string) { delete(pers(m), p) },
			func(p string) string { return "personalizations.0." + p }},
		{props["from"],
			func(m map[string]any, p string) { delete(m["from"].(map[string]any), p) },
			func(p string) string { return "from." + p }},
		{props["content"].(map[string]any)["items"],
			func(m map[string]any, p string) { delete(m["content"].([]any)[0].(map[string]any), p) },
			func(p string) string { return "content.0." + p }},
	}
	for _, n := range nested {
		for _, p := range oaspec.Required(n.schema.(map[string]any)) {
			t.Run("without "+n.field(p), func(t *testing.T) {
				m := validMail("o-1", "fan@example.com")
				n.remove(m, p)
				rejects(t, m, n.field(p))
			})
		}
	}
}

func TestMailSendResponsesMatchSpec(t *testing.T) {
	doc := loadSpec(t, oaspec.SendGridMailSend)
	op, err := doc.Operation("/v3/mail/send", "post")
	if err != nil {
		t.Fatal(err)
	}
	responses := op["responses"].(map[string]any)
	if _, hasBody := responses["202"].(map[string]any)["content"]; hasBody {
		t.Fatal("spec documents a 202 body; the sandbox sends none")
	}

	_, srv, _ := newSandbox(t)
	if a := send(t, srv, encode(t, validMail("o-1", "fan@example.com"))); a.status != http.StatusAccepted || len(a.raw) != 0 {
		t.Fatalf("HTTP %d %q", a.status, a.raw)
	}

	bad := validMail("o-1", "fan@example.com")
	delete(bad, "from")
	badRequest := send(t, srv, encode(t, bad))
	unauthorized := request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send", strings.NewReader("{}"), map[string]string{"Content-Type": "application/json"})
	tooLarge := request(t, t.Context(), http.MethodPost, srv.URL+"/v3/mail/send",
		io.LimitReader(zeros{}, 31<<20), map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/json"})
	for status, a := range map[string]answer{"400": badRequest, "401": unauthorized, "413": tooLarge} {
		if want, _ := strconv.Atoi(status); a.status != want {
			t.Fatalf("got HTTP %d, want %s", a.status, status)
		}
		schema, err := doc.ResponseSchema("/v3/mail/send", "post", status, "application/json")
		if err != nil {
			t.Fatal(err)
		}
		requireValid(t, doc, schema, a.raw, "HTTP "+status+" body")
	}
}

func TestEmailActivityMatchesSpec(t *testing.T) {
	doc := loadSpec(t, oaspec.SendGridEmailActivity)
	op, err := doc.Operation("/v3/messages", "get")
	if err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, p := range op["parameters"].([]any) {
		pm := p.(map[string]any)
		if pm["in"] == "query" {
			params = append(params, pm["name"].(string))
			if pm["name"] == "query" && pm["required"] != true {
				t.Error("spec no longer requires query; the sandbox does")
			}
		}
	}
	slices.Sort(params)
	if !reflect.DeepEqual(params, []string{"limit", "query"}) {
		t.Errorf("spec query parameters %v, sandbox supports [limit query]", params)
	}

	ok200, err := doc.ResponseSchema("/v3/messages", "get", "200", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	bad400, err := doc.ResponseSchema("/v3/messages", "get", "400", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	rate429, err := doc.ResponseSchema("/v3/messages", "get", "429", "application/json")
	if err != nil {
		t.Fatal(err)
	}

	sb, srv, _ := newSandbox(t)
	sendOffer(t, srv, "o-1", "fan@example.com")
	sendOffer(t, srv, "o-1", "other@example.com")

	// The query format the spec's description documents.
	found := search(t, srv, url.Values{"query": {`to_email="fan@example.com"`}})
	requireValid(t, doc, ok200, found.raw, "activity 200")
	if !strings.Contains(string(found.raw), `"to_email":"fan@example.com"`) {
		t.Fatalf("documented to_email query found nothing: %s", found.raw)
	}
	items := ok200["properties"].(map[string]any)["messages"].(map[string]any)["items"].(map[string]any)
	var act activity
	if err := json.Unmarshal(found.raw, &act); err != nil || len(act.Messages) == 0 {
		t.Fatalf("decoding activity: %v %s", err, found.raw)
	}
	for _, name := range oaspec.Required(items) {
		if _, ok := act.Messages[0][name]; !ok {
			t.Errorf("activity message lacks required %s", name)
		}
	}

	requireValid(t, doc, ok200, search(t, srv, url.Values{"query": {`unique_args['offer_id']="none"`}}).raw, "empty activity 200")
	requireValid(t, doc, bad400, search(t, srv, url.Values{"query": {`bad_field="x"`}}).raw, "activity 400")

	sb.SetFault(func(*http.Request) sendgrid.Fault {
		return sendgrid.Fault{Status: http.StatusTooManyRequests, Message: "too many requests"}
	})
	limited := search(t, srv, url.Values{"query": {`to_email="fan@example.com"`}})
	if limited.status != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d", limited.status)
	}
	requireValid(t, doc, rate429, limited.raw, "activity 429")
}
