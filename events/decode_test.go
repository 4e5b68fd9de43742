package events_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/events"
)

// now is the decoders' clock in these tests.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newDecoder(t testing.TB, cfg events.DecoderConfig) *events.Decoder {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return now }
	}
	d, err := events.NewDecoder(cfg)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

// fixture is a valid event of one type: its data as JSON, the payload it
// decodes to, and which data members are required.
type fixture struct {
	data     string
	want     events.Event // payload only; attributes come from baseEvent
	required []string
}

var fixtures = map[events.Type]fixture{
	events.TypeListen: {
		data: `{"performer":"taylor-swift","track":"Cruel Summer","ms_played":178000,"device":"mobile","country":"us"}`,
		want: events.Event{Listen: &events.Listen{
			Performer: "taylor-swift", Track: "Cruel Summer", MsPlayed: 178000, Device: "mobile", Country: "US",
		}},
		required: []string{"performer", "track", "ms_played", "device", "country"},
	},
	events.TypePageView: {
		data:     `{"performer":"taylor-swift","url":"https://www.taylorswift.com/tour?x=1"}`,
		want:     events.Event{PageView: &events.PageView{Performer: "taylor-swift", URL: "https://www.taylorswift.com/tour?x=1"}},
		required: []string{"performer", "url"},
	},
	events.TypeSocialPost: {
		data: `{"text":"I love Taylor Swift \u2764\ufe0f <3","channel":"x","reward_campaign":"rc-1","in_reply_to_promo":"promo-7"}`,
		want: events.Event{SocialPost: &events.SocialPost{
			Text: "I love Taylor Swift \u2764\ufe0f <3", Channel: "x", RewardCampaign: "rc-1", InReplyToPromo: "promo-7",
		}},
		required: []string{"text", "channel"},
	},
	events.TypePhotoTag: {
		data:     `{"performer":"taylor-swift"}`,
		want:     events.Event{PhotoTag: &events.PhotoTag{Performer: "taylor-swift"}},
		required: []string{"performer"},
	},
	events.TypeFollow: {
		data:     `{"performer":"taylor-swift"}`,
		want:     events.Event{Follow: &events.Follow{Performer: "taylor-swift"}},
		required: []string{"performer"},
	},
	events.TypeTicketPurchase: {
		data: `{"event":"eras-lon-2025-06-21","performer":"taylor-swift","venue":{"lat":51.556,"lon":-0.2796},"quantity":2,"price":15000,"currency":"gbp"}`,
		want: events.Event{TicketPurchase: &events.TicketPurchase{
			Event: "eras-lon-2025-06-21", Performer: "taylor-swift", Venue: events.Venue{Lat: 51.556, Lon: -0.2796},
			Quantity: 2, Price: 15000, Currency: "GBP",
		}},
		required: []string{"event", "performer", "venue", "quantity", "price"},
	},
	events.TypeMerchPurchase: {
		data: `{"performer":"taylor-swift","item":"tour hoodie","amount":6500,"currency":"USD"}`,
		want: events.Event{MerchPurchase: &events.MerchPurchase{
			Performer: "taylor-swift", Item: "tour hoodie", Amount: 6500, Currency: "USD",
		}},
		required: []string{"performer", "item", "amount"},
	},
	events.TypeDonation: {
		data:     `{"charity":"feeding-america","amount":0}`,
		want:     events.Event{Donation: &events.Donation{Charity: "feeding-america"}},
		required: []string{"charity", "amount"},
	},
	events.TypeAttendance: {
		data: `{"event":"eras-lon-2025-06-21","performer":"taylor-swift","verified_by":"ticket_scan"}`,
		want: events.Event{Attendance: &events.Attendance{
			Event: "eras-lon-2025-06-21", Performer: "taylor-swift", VerifiedBy: "ticket_scan",
		}},
		required: []string{"event", "performer", "verified_by"},
	},
	events.TypeSocialGraph: {
		data: `{"friend_count":312,"friend_ids":["u-1","u-2"],"interactions":[{"with":"u-1","count":14},{"with":"u-9","count":1}]}`,
		want: events.Event{SocialGraph: &events.SocialGraph{
			FriendCount: 312, FriendIDs: []string{"u-1", "u-2"},
			Interactions: []events.Interaction{{With: "u-1", Count: 14}, {With: "u-9", Count: 1}},
		}},
		required: []string{"friend_count"},
	},
}

// attrs are the context attributes of every test event.
func attrs(typ events.Type) map[string]any {
	return map[string]any{
		"specversion":     "1.0",
		"id":              "evt-1",
		"source":          "https://streamco.example",
		"type":            string(typ),
		"subject":         "user-42",
		"time":            "2025-06-01T11:59:30.5+02:00",
		"datacontenttype": "application/json",
	}
}

// wantEvent is what the structured or binary form of fixtures[typ] decodes to.
func wantEvent(typ events.Type) events.Event {
	e := fixtures[typ].want
	e.ID, e.Source, e.Subject, e.Type = "evt-1", "https://streamco.example", "user-42", typ
	e.Time = time.Date(2025, 6, 1, 9, 59, 30, 5e8, time.UTC)
	return e
}

// structured returns the structured-mode record of fixtures[typ] with the
// envelope changed by edit (which may be nil).
func structured(t testing.TB, typ events.Type, edit func(map[string]any)) []byte {
	t.Helper()
	env := attrs(typ)
	env["data"] = json.RawMessage(fixtures[typ].data)
	if edit != nil {
		edit(env)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withData returns the structured-mode record of fixtures[typ] with its data
// changed by edit.
func withData(t testing.TB, typ events.Type, edit func(map[string]any)) []byte {
	t.Helper()
	var data map[string]any
	if err := json.Unmarshal([]byte(fixtures[typ].data), &data); err != nil {
		t.Fatal(err)
	}
	edit(data)
	return structured(t, typ, func(env map[string]any) { env["data"] = data })
}

// binary returns the binary-mode record of fixtures[typ].
func binary(typ events.Type) ([]byte, []events.Header) {
	a := attrs(typ)
	var hs []events.Header
	for _, k := range slices.Sorted(maps.Keys(a)) {
		key := "ce_" + k
		if k == "datacontenttype" {
			key = "content-type"
		}
		hs = append(hs, events.Header{Key: key, Value: []byte(a[k].(string))})
	}
	return []byte(fixtures[typ].data), hs
}

func TestFixturesCoverEveryType(t *testing.T) {
	for _, typ := range events.Types() {
		if _, ok := fixtures[typ]; !ok {
			t.Errorf("no fixture for type %s", typ)
		}
		if !typ.Valid() {
			t.Errorf("Types() lists %s, which is not Valid", typ)
		}
	}
	if len(fixtures) != len(events.Types()) {
		t.Errorf("%d fixtures for %d types", len(fixtures), len(events.Types()))
	}
	if events.Type("com.example.listen").Valid() {
		t.Error("prefixed type name is Valid")
	}
}

func TestDecodeEveryType(t *testing.T) {
	d := newDecoder(t, events.DecoderConfig{})
	for _, typ := range events.Types() {
		t.Run(string(typ), func(t *testing.T) {
			want := wantEvent(typ)

			got, err := d.Decode(structured(t, typ, nil), nil)
			if err != nil {
				t.Fatalf("structured: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("structured:\n got %+v\nwant %+v", got, want)
			}

			value, headers := binary(typ)
			got, err = d.Decode(value, headers)
			if err != nil {
				t.Fatalf("binary: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("binary:\n got %+v\nwant %+v", got, want)
			}

			// What Encode writes decodes to the same event.
			enc, err := events.Encode(got)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			again, err := d.Decode(enc, []events.Header{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}})
			if err != nil {
				t.Fatalf("decoding %s: %v", enc, err)
			}
			if !reflect.DeepEqual(again, want) {
				t.Errorf("re-encoded:\n got %+v\nwant %+v", again, want)
			}
		})
	}
}

func TestDecodeDataFields(t *testing.T) {
	d := newDecoder(t, events.DecoderConfig{})
	for _, typ := range events.Types() {
		f := fixtures[typ]
		var data map[string]any
		if err := json.Unmarshal([]byte(f.data), &data); err != nil {
			t.Fatal(err)
		}
		for field := range data {
			t.Run(string(typ)+"/"+field, func(t *testing.T) {
				path := "data." + field

				// Absent and null are the same: required fields are
				// missing, optional ones simply unset.
				for _, how := range []string{"absent", "null"} {
					value := withData(t, typ, func(m map[string]any) {
						if how == "absent" {
							delete(m, field)
						} else {
							m[field] = nil
						}
					})
					_, err := d.Decode(value, nil)
					if slices.Contains(f.required, field) {
						wantRejection(t, err, events.ReasonMissingField, path)
					} else if err != nil {
						t.Errorf("%s optional field: %v", how, err)
					}
				}

				// No data field of any type is a boolean.
				_, err := d.Decode(withData(t, typ, func(m map[string]any) { m[field] = true }), nil)
				wantRejection(t, err, events.ReasonInvalidField, path+": want")

				// A repeated field is ambiguous.
				dup := strings.Replace(string(structured(t, typ, nil)), `"`+field+`":`, `"`+field+`":null,"`+field+`":`, 1)
				_, err = d.Decode([]byte(dup), nil)
				wantRejection(t, err, events.ReasonMalformed, path+" appears more than once")
			})
		}
	}
}

// wantRejection fails t unless err is a *Rejection with the reason and a
// detail containing detail.
func wantRejection(t testing.TB, err error, reason events.Reason, detail string) {
	t.Helper()
	var rej *events.Rejection
	if !errors.As(err, &rej) {
		t.Errorf("err = %v, want a *Rejection %s containing %q", err, reason, detail)
		return
	}
	if rej.Reason != reason || !strings.Contains(rej.Detail, detail) {
		t.Errorf("rejection = %s: %s; want %s containing %q", rej.Reason, rej.Detail, reason, detail)
	}
	if !strings.HasPrefix(err.Error(), string(reason)+": ") {
		t.Errorf("Error() = %q, want it to start with the reason", err.Error())
	}
}

func TestDecodeRejects(t *testing.T) {
	listen := events.TypeListen
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	ct := func(v string) []events.Header { return []events.Header{{Key: "content-type", Value: []byte(v)}} }
	setHeader := func(key, value string) func([]events.Header) []events.Header {
		return func(hs []events.Header) []events.Header {
			for i := range hs {
				if hs[i].Key == key {
					hs[i].Value = []byte(value)
				}
			}
			return hs
		}
	}
	type tc struct {
		name    string
		value   []byte
		headers []events.Header
		reason  events.Reason
		detail  string
	}
	bv, bh := binary(listen)
	tests := []tc{
		// malformed
		{name: "not JSON", value: []byte("listen!"), reason: events.ReasonMalformed, detail: "not a JSON object"},
		{name: "empty", value: nil, reason: events.ReasonMalformed, detail: "not a JSON object"},
		{name: "array", value: []byte(`[{"id":"1"}]`), reason: events.ReasonMalformed, detail: "not a JSON object"},
		{name: "truncated", value: structured(t, listen, nil)[:60], reason: events.ReasonMalformed, detail: "parsing JSON"},
		{name: "trailing data", value: append(structured(t, listen, nil), " {}"...), reason: events.ReasonMalformed, detail: "want end of input"},
		{name: "trailing comma", value: []byte(`{"id":"1",}`), reason: events.ReasonMalformed, detail: "want a member name"},
		{name: "invalid UTF-8", value: []byte(strings.Replace(string(structured(t, listen, nil)), "evt-1", "a\xffb", 1)), reason: events.ReasonMalformed, detail: "invalid UTF-8"},
		{name: "raw control character", value: []byte("{\"id\":\"a\tb\"}"), reason: events.ReasonMalformed, detail: "control character"},
		{name: "bad escape", value: []byte(`{"id":"a\qb"}`), reason: events.ReasonMalformed, detail: "escape"},
		{name: "bad number", value: []byte(`{"x":01}`), reason: events.ReasonMalformed, detail: "parsing JSON"},
		{name: "bad literal", value: []byte(`{"x":nul}`), reason: events.ReasonMalformed, detail: "want null"},
		{name: "deep extension", value: []byte(`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`), reason: events.ReasonMalformed, detail: "nested deeper"},
		{name: "repeated attribute", value: []byte(strings.Replace(string(structured(t, listen, nil)), `"subject":`, `"subject":"user-1","subject":`, 1)), reason: events.ReasonMalformed, detail: "subject appears more than once"},
		{name: "repeated data", value: []byte(strings.Replace(string(structured(t, listen, nil)), `"data":`, `"data":{},"data":`, 1)), reason: events.ReasonMalformed, detail: "data appears more than once"},
		{name: "structured with JSON content-type", value: structured(t, listen, nil), headers: ct("application/json"), reason: events.ReasonMalformed, detail: "content-type header"},
		{name: "batch mode", value: structured(t, listen, nil), headers: ct("application/cloudevents-batch+json"), reason: events.ReasonMalformed, detail: "content-type header"},
		{name: "binary repeated header", value: bv, headers: append(slices.Clone(bh), events.Header{Key: "ce_id", Value: []byte("2")}), reason: events.ReasonMalformed, detail: "ce_id appears more than once"},
		{name: "binary truncated data", value: bv[:20], headers: bh, reason: events.ReasonMalformed, detail: "parsing JSON"},
		{name: "binary trailing data", value: append(slices.Clone(bv), "}"...), headers: bh, reason: events.ReasonMalformed, detail: "want end of input"},

		// unsupported_specversion
		{name: "specversion 0.3", value: structured(t, listen, set("specversion", "0.3")), reason: events.ReasonSpecVersion, detail: `"0.3"`},
		{name: "binary specversion 2.0", value: bv, headers: setHeader("ce_specversion", "2.0")(slices.Clone(bh)), reason: events.ReasonSpecVersion, detail: `"2.0"`},

		// unknown_type
		{name: "prefixed type", value: structured(t, listen, set("type", "com.crescendo.listen")), reason: events.ReasonUnknownType, detail: `"com.crescendo.listen"`},
		{name: "upper case type", value: structured(t, listen, set("type", "LISTEN")), reason: events.ReasonUnknownType, detail: "LISTEN"},
		{name: "other type", value: structured(t, listen, set("type", "play")), reason: events.ReasonUnknownType, detail: "play"},

		// missing_field
		{name: "no specversion", value: structured(t, listen, del("specversion")), reason: events.ReasonMissingField, detail: "specversion is required"},
		{name: "no id", value: structured(t, listen, del("id")), reason: events.ReasonMissingField, detail: "id is required"},
		{name: "blank id", value: structured(t, listen, set("id", " \t")), reason: events.ReasonMissingField, detail: "id is required"},
		{name: "null id", value: structured(t, listen, set("id", nil)), reason: events.ReasonMissingField, detail: "id is required"},
		{name: "no source", value: structured(t, listen, del("source")), reason: events.ReasonMissingField, detail: "source is required"},
		{name: "no type", value: structured(t, listen, del("type")), reason: events.ReasonMissingField, detail: "type is required"},
		{name: "no subject", value: structured(t, listen, del("subject")), reason: events.ReasonMissingField, detail: "subject is required"},
		{name: "no time", value: structured(t, listen, del("time")), reason: events.ReasonMissingField, detail: "time is required"},
		{name: "no data", value: structured(t, listen, del("data")), reason: events.ReasonMissingField, detail: "data is required"},
		{name: "null data", value: structured(t, listen, set("data", nil)), reason: events.ReasonMissingField, detail: "data is required"},
		{name: "binary no data", value: nil, headers: bh, reason: events.ReasonMissingField, detail: "data is required"},
		{name: "binary no subject", value: bv, headers: slices.DeleteFunc(slices.Clone(bh), func(h events.Header) bool { return h.Key == "ce_subject" }), reason: events.ReasonMissingField, detail: "subject is required"},
		{name: "venue without lon", value: withData(t, events.TypeTicketPurchase, set("venue", map[string]any{"lat": 1})), reason: events.ReasonMissingField, detail: "data.venue.lon is required"},
		{name: "interaction without count", value: withData(t, events.TypeSocialGraph, set("interactions", []any{map[string]any{"with": "u"}})), reason: events.ReasonMissingField, detail: "data.interactions[0].count is required"},
		{name: "blank friend id", value: withData(t, events.TypeSocialGraph, set("friend_ids", []any{"a", ""})), reason: events.ReasonMissingField, detail: "data.friend_ids[1] is required"},

		// invalid_field: envelope
		{name: "numeric id", value: structured(t, listen, set("id", 7)), reason: events.ReasonInvalidField, detail: "id: want a string, got a number"},
		{name: "object subject", value: structured(t, listen, set("subject", map[string]any{})), reason: events.ReasonInvalidField, detail: "subject: want a string, got an object"},
		{name: "long id", value: structured(t, listen, set("id", strings.Repeat("x", 257))), reason: events.ReasonInvalidField, detail: "id is 257 bytes"},
		{name: "source with space", value: structured(t, listen, set("source", "stream co")), reason: events.ReasonInvalidField, detail: "not a URI reference"},
		{name: "time not RFC 3339", value: structured(t, listen, set("time", "2025-06-01 12:00:00")), reason: events.ReasonInvalidField, detail: "not an RFC 3339"},
		{name: "time without zone", value: structured(t, listen, set("time", "2025-06-01T12:00:00")), reason: events.ReasonInvalidField, detail: "not an RFC 3339"},
		{name: "time before 1970", value: structured(t, listen, set("time", "1969-12-31T23:59:59Z")), reason: events.ReasonInvalidField, detail: "before 1970"},
		{name: "XML data", value: structured(t, listen, set("datacontenttype", "application/xml")), reason: events.ReasonInvalidField, detail: "datacontenttype"},
		{name: "empty datacontenttype", value: structured(t, listen, set("datacontenttype", "")), reason: events.ReasonInvalidField, detail: "datacontenttype"},
		{name: "binary XML data", value: bv, headers: setHeader("content-type", "text/xml")(slices.Clone(bh)), reason: events.ReasonInvalidField, detail: "datacontenttype"},
		{name: "binary id not UTF-8", value: bv, headers: setHeader("ce_id", "a\xff")(slices.Clone(bh)), reason: events.ReasonInvalidField, detail: "ce_id is not valid UTF-8"},
		{name: "data_base64", value: structured(t, listen, func(m map[string]any) { delete(m, "data"); m["data_base64"] = "e30=" }), reason: events.ReasonInvalidField, detail: "data_base64"},
		{name: "data is a string", value: structured(t, listen, set("data", "{}")), reason: events.ReasonInvalidField, detail: "data: want an object, got a string"},
		{name: "binary data is an array", value: []byte(`[]`), headers: bh, reason: events.ReasonInvalidField, detail: "data: want an object, got an array"},

		// invalid_field: data
		{name: "negative ms_played", value: withData(t, listen, set("ms_played", -1)), reason: events.ReasonInvalidField, detail: "data.ms_played is -1"},
		{name: "fractional ms_played", value: withData(t, listen, set("ms_played", 1.5)), reason: events.ReasonInvalidField, detail: "data.ms_played: want an integer, got number 1.5"},
		{name: "exponent ms_played", value: withData(t, listen, set("ms_played", json.Number("1e3"))), reason: events.ReasonInvalidField, detail: "want an integer"},
		{name: "string ms_played", value: withData(t, listen, set("ms_played", "1000")), reason: events.ReasonInvalidField, detail: "data.ms_played: want an integer, got a string"},
		{name: "huge ms_played", value: withData(t, listen, set("ms_played", json.Number("99999999999999999999"))), reason: events.ReasonInvalidField, detail: "does not fit"},
		{name: "ms_played over a day", value: withData(t, listen, set("ms_played", 86_400_001)), reason: events.ReasonInvalidField, detail: "data.ms_played"},
		{name: "three-letter country", value: withData(t, listen, set("country", "USA")), reason: events.ReasonInvalidField, detail: "data.country"},
		{name: "long performer", value: withData(t, listen, set("performer", strings.Repeat("é", 129))), reason: events.ReasonInvalidField, detail: "data.performer is 258 bytes"},
		{name: "relative url", value: withData(t, events.TypePageView, set("url", "/tour")), reason: events.ReasonInvalidField, detail: "data.url"},
		{name: "ftp url", value: withData(t, events.TypePageView, set("url", "ftp://x.example/")), reason: events.ReasonInvalidField, detail: "data.url"},
		{name: "long text", value: withData(t, events.TypeSocialPost, set("text", strings.Repeat("x", 16<<10+1))), reason: events.ReasonInvalidField, detail: "data.text"},
		{name: "lat 91", value: withData(t, events.TypeTicketPurchase, set("venue", map[string]any{"lat": 91, "lon": 0})), reason: events.ReasonInvalidField, detail: "data.venue.lat"},
		{name: "lon -181", value: withData(t, events.TypeTicketPurchase, set("venue", map[string]any{"lat": 0, "lon": -181})), reason: events.ReasonInvalidField, detail: "data.venue.lon"},
		{name: "lat as string", value: withData(t, events.TypeTicketPurchase, set("venue", map[string]any{"lat": "1", "lon": 0})), reason: events.ReasonInvalidField, detail: "data.venue.lat: want a number, got a string"},
		{name: "lat overflow", value: withData(t, events.TypeTicketPurchase, set("venue", map[string]any{"lat": json.Number("1e400"), "lon": 0})), reason: events.ReasonInvalidField, detail: "out of range"},
		{name: "venue as array", value: withData(t, events.TypeTicketPurchase, set("venue", []any{1, 2})), reason: events.ReasonInvalidField, detail: "data.venue: want an object, got an array"},
		{name: "zero quantity", value: withData(t, events.TypeTicketPurchase, set("quantity", 0)), reason: events.ReasonInvalidField, detail: "data.quantity is 0"},
		{name: "negative price", value: withData(t, events.TypeTicketPurchase, set("price", -100)), reason: events.ReasonInvalidField, detail: "data.price is -100"},
		{name: "bad currency", value: withData(t, events.TypeMerchPurchase, set("currency", "US$")), reason: events.ReasonInvalidField, detail: "data.currency"},
		{name: "negative donation", value: withData(t, events.TypeDonation, set("amount", -1)), reason: events.ReasonInvalidField, detail: "data.amount is -1"},
		{name: "negative friend_count", value: withData(t, events.TypeSocialGraph, set("friend_count", -1)), reason: events.ReasonInvalidField, detail: "data.friend_count"},
		{name: "numeric friend id", value: withData(t, events.TypeSocialGraph, set("friend_ids", []any{"a", 2})), reason: events.ReasonInvalidField, detail: "data.friend_ids[1]: want a string, got a number"},
		{name: "interaction count 0", value: withData(t, events.TypeSocialGraph, set("interactions", []any{map[string]any{"with": "u", "count": 0}})), reason: events.ReasonInvalidField, detail: "data.interactions[0].count is 0"},
		{name: "interaction not object", value: withData(t, events.TypeSocialGraph, set("interactions", []any{"u"})), reason: events.ReasonInvalidField, detail: "data.interactions[0]: want an object, got a string"},
		{name: "interaction null", value: withData(t, events.TypeSocialGraph, set("interactions", []any{nil})), reason: events.ReasonInvalidField, detail: "data.interactions[0]: want an object, got null"},

		// future_dated
		{name: "six minutes ahead", value: structured(t, listen, set("time", "2025-06-01T12:06:00Z")), reason: events.ReasonFutureDated, detail: "6m0s ahead"},
		{name: "binary a year ahead", value: bv, headers: setHeader("ce_time", "2026-06-01T12:00:00Z")(slices.Clone(bh)), reason: events.ReasonFutureDated, detail: "ahead"},
	}
	d := newDecoder(t, events.DecoderConfig{})
	seen := map[events.Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode(tt.value, tt.headers)
			if err == nil {
				t.Fatalf("decoded %+v, want a rejection", got)
			}
			wantRejection(t, err, tt.reason, tt.detail)
		})
		seen[tt.reason] = true
	}

	// Oversized records are rejected before parsing, headers included.
	small := newDecoder(t, events.DecoderConfig{MaxSize: 100})
	_, err := small.Decode([]byte(strings.Repeat("x", 101)), nil)
	wantRejection(t, err, events.ReasonOversized, "101 bytes")
	_, err = small.Decode([]byte(`{}`), []events.Header{{Key: "k", Value: make([]byte, 98)}})
	wantRejection(t, err, events.ReasonOversized, "101 bytes")
	var rej *events.Rejection
	if _, err := small.Decode([]byte(`{"specversion":"1.1"}`), nil); !errors.As(err, &rej) || rej.Reason != events.ReasonSpecVersion {
		t.Errorf("small record: err = %v, want %s", err, events.ReasonSpecVersion)
	}
	seen[events.ReasonOversized] = true

	for _, r := range []events.Reason{
		events.ReasonMalformed, events.ReasonOversized, events.ReasonSpecVersion, events.ReasonUnknownType,
		events.ReasonMissingField, events.ReasonInvalidField, events.ReasonFutureDated,
	} {
		if !seen[r] {
			t.Errorf("no test for reason %s", r)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	listen := events.TypeListen
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	tests := []struct {
		name    string
		value   []byte
		headers []events.Header
	}{
		{name: "no datacontenttype", value: structured(t, listen, func(m map[string]any) { delete(m, "datacontenttype") })},
		{name: "vendor JSON datacontenttype", value: structured(t, listen, set("datacontenttype", "application/vnd.streamco+json; charset=utf-8"))},
		{name: "extension attributes", value: structured(t, listen, func(m map[string]any) {
			m["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
			m["partnerext"] = map[string]any{"nested": []any{1, true, nil, "x", map[string]any{}}}
		})},
		{name: "unknown data field", value: withData(t, listen, set("album", map[string]any{"name": "Lover"}))},
		{name: "four minutes ahead", value: structured(t, listen, set("time", "2025-06-01T12:04:00Z"))},
		{name: "escaped strings", value: []byte(strings.Replace(string(structured(t, listen, nil)), `"type":"listen"`, `"type":"li\u0073ten"`, 1))},
		{name: "white space", value: []byte(" \n{ \"specversion\" : \"1.0\" ,\"id\":\"1\",\"source\":\"s\",\"type\":\"follow\",\"subject\":\"u\",\"time\":\"2025-06-01T00:00:00Z\",\"data\":\r\n{ \"performer\" :\t\"p\" } }\n ")},
		{name: "structured content-type", value: structured(t, listen, nil), headers: []events.Header{{Key: "content-type", Value: []byte("Application/CloudEvents+JSON")}}},
		{name: "other headers", value: structured(t, listen, nil), headers: []events.Header{{Key: "traceparent", Value: []byte{0xff}}}},
	}
	d := newDecoder(t, events.DecoderConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := d.Decode(tt.value, tt.headers); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		})
	}
}

func TestDecodeStrings(t *testing.T) {
	d := newDecoder(t, events.DecoderConfig{})
	value := []byte(`{"specversion":"1.0","id":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83c\udfb5\ud800x","source":"s","type":"follow","subject":"u","time":"2025-06-01T00:00:00Z","data":{"performer":"Beyonc\u00e9"}}`)
	e, err := d.Decode(value, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\"b\\c/d\b\f\n\r\té🎵\uFFFDx"; e.ID != want {
		t.Errorf("ID = %q, want %q", e.ID, want)
	}
	if e.Follow.Performer != "Beyoncé" {
		t.Errorf("performer = %q", e.Follow.Performer)
	}
}

func TestPerformer(t *testing.T) {
	for _, typ := range events.Types() {
		e := wantEvent(typ)
		want := "taylor-swift"
		switch typ {
		case events.TypeSocialPost, events.TypeDonation, events.TypeSocialGraph:
			want = ""
		}
		if got := e.Performer(); got != want {
			t.Errorf("%s: Performer() = %q, want %q", typ, got, want)
		}
	}
}

func TestNewDecoder(t *testing.T) {
	if _, err := events.NewDecoder(events.DecoderConfig{MaxSize: -1}); err == nil {
		t.Error("negative MaxSize accepted")
	}
	if _, err := events.NewDecoder(events.DecoderConfig{MaxFutureSkew: -time.Second}); err == nil {
		t.Error("negative MaxFutureSkew accepted")
	}
	// The zero config uses the real clock and the default limits.
	d, err := events.NewDecoder(events.DecoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := wantEvent(events.TypeFollow)
	e.Time = time.Now().Add(4 * time.Minute)
	value, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(value, nil); err != nil {
		t.Errorf("event 4m ahead of the real clock: %v", err)
	}
	e.Time = time.Now().Add(6 * time.Minute)
	value, _ = events.Encode(e)
	_, err = d.Decode(value, nil)
	wantRejection(t, err, events.ReasonFutureDated, "")

	big := make([]byte, events.DefaultMaxSize)
	_, err = d.Decode(big, nil)
	wantRejection(t, err, events.ReasonMalformed, "")
	_, err = d.Decode(append(big, ' '), nil)
	wantRejection(t, err, events.ReasonOversized, "")
}

func TestEncodeRejects(t *testing.T) {
	valid := wantEvent(events.TypeTicketPurchase)
	tests := []struct {
		name   string
		edit   func(*events.Event)
		reason events.Reason
		detail string
	}{
		{"no id", func(e *events.Event) { e.ID = "" }, events.ReasonMissingField, "id"},
		{"no subject", func(e *events.Event) { e.Subject = "" }, events.ReasonMissingField, "subject"},
		{"zero time", func(e *events.Event) { e.Time = time.Time{} }, events.ReasonMissingField, "time"},
		{"year 10000", func(e *events.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, events.ReasonInvalidField, "time"},
		{"unknown type", func(e *events.Event) { e.Type = "play" }, events.ReasonUnknownType, "play"},
		{"no payload", func(e *events.Event) { e.TicketPurchase = nil }, events.ReasonMissingField, "data"},
		{"two payloads", func(e *events.Event) { e.Follow = &events.Follow{Performer: "p"} }, events.ReasonInvalidField, "2 payloads"},
		{"payload of another type", func(e *events.Event) { e.Type = events.TypeFollow }, events.ReasonInvalidField, "payload is for type ticket_purchase"},
		{"lat out of range", func(e *events.Event) {
			tp := *e.TicketPurchase
			tp.Venue.Lat = 100
			e.TicketPurchase = &tp
		}, events.ReasonInvalidField, "data.venue.lat"},
		{"lower case currency", func(e *events.Event) {
			tp := *e.TicketPurchase
			tp.Currency = "gbp"
			e.TicketPurchase = &tp
		}, events.ReasonInvalidField, "data.currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid
			tt.edit(&e)
			b, err := events.Encode(e)
			if err == nil {
				t.Fatalf("encoded %s, want a rejection", b)
			}
			wantRejection(t, err, tt.reason, tt.detail)
		})
	}
}

func TestEncodeShape(t *testing.T) {
	b, err := events.Encode(wantEvent(events.TypeTicketPurchase))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"evt-1","source":"https://streamco.example","type":"ticket_purchase","subject":"user-42","time":"2025-06-01T09:59:30.5Z","datacontenttype":"application/json","data":{"event":"eras-lon-2025-06-21","performer":"taylor-swift","venue":{"lat":51.556,"lon":-0.2796},"quantity":2,"price":15000,"currency":"GBP"}}`
	if string(b) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", b, want)
	}
}

// The decoder reads its clock only for events later than the last allowance
// it computed, and the answers are those of a fresh reading: as the clock
// moves on, an event once too far ahead is accepted, and nothing past the
// allowance, however far (even past where nanoseconds overflow), gets in.
func TestFutureAllowanceFollowsTheClock(t *testing.T) {
	var (
		clock = now
		reads int
	)
	d := newDecoder(t, events.DecoderConfig{Clock: func() time.Time { reads++; return clock }})
	decode := func(at string) error {
		t.Helper()
		_, err := d.Decode(structured(t, events.TypeListen, func(m map[string]any) { m["time"] = at }), nil)
		return err
	}
	if err := decode("2025-06-01T12:04:00Z"); err != nil {
		t.Fatalf("4m ahead: %v", err)
	}
	before := reads
	for _, at := range []string{"2025-06-01T11:00:00Z", "2025-06-01T12:04:59Z", "2020-01-01T00:00:00Z"} {
		if err := decode(at); err != nil {
			t.Fatalf("%s, inside the allowance: %v", at, err)
		}
	}
	if reads != before {
		t.Errorf("events inside the allowance read the clock %d times, want none", reads-before)
	}
	for _, at := range []string{"2025-06-01T12:06:00Z", "3000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"} {
		wantRejection(t, decode(at), events.ReasonFutureDated, "ahead")
	}
	clock = now.Add(2 * time.Minute)
	if err := decode("2025-06-01T12:06:00Z"); err != nil {
		t.Errorf("6m past the first reading, 4m past the clock now: %v", err)
	}
	wantRejection(t, decode("2025-06-01T12:07:01Z"), events.ReasonFutureDated, "ahead")
}
