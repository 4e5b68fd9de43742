package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// An offer is rendered with the templates of the rule version that issued it.
func TestOfferContentIsTheIssuingVersions(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s)
	issue := func(tier, version int) uuid.UUID {
		t.Helper()
		id := uuid.New()
		_, err := s.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
				index_value, event_id, partition, issued_at, expires_at)
			VALUES ($1, $2, 'r', $3, $4, 'perf', 'show', '{presale}', 12, 'p/e1', 0, now(), now() + interval '1 hour')`, id, fan, version, tier)
		must(t, err)
		return id
	}
	plain := issue(1, 1)

	r := rule(10)
	r.Templates = &offers.Templates{SMS: "{{.Show}} {{.Link}}", PushLink: "streamly://offers/{{.Token}}"}
	if v := putRule(t, s, r); v != 2 {
		t.Fatalf("version %d", v)
	}
	templated := issue(2, 2)
	r.Templates = &offers.Templates{SMS: "Changed: {{.Link}}"}
	putRule(t, s, r)

	c, err := s.OfferContent(ctx, plain)
	must(t, err)
	if c.Templates != nil {
		t.Fatalf("an offer of a version without templates has %+v", c.Templates)
	}
	var starts time.Time
	must(t, s.Pool().QueryRow(ctx, `SELECT starts_at FROM shows WHERE id = 'show'`).Scan(&starts))
	if !c.ShowStartsAt.Equal(starts) {
		t.Fatalf("show starts %v, want %v", c.ShowStartsAt, starts)
	}
	c, err = s.OfferContent(ctx, templated)
	must(t, err)
	want := &offers.Templates{SMS: "{{.Show}} {{.Link}}", PushLink: "streamly://offers/{{.Token}}"}
	if !reflect.DeepEqual(c.Templates, want) {
		t.Fatalf("templates %+v, want version 2's %+v", c.Templates, want)
	}
	if _, err := s.OfferContent(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown offer: %v", err)
	}
}

// Deliverable reads in one round trip what Delivery, DeliveryContext and
// OfferContent read one by one, including an open attempt's context.
func TestDeliverableIsTheThreeReads(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s)
	r := rule(10)
	r.Templates = &offers.Templates{SMS: "{{.Show}} {{.Link}}"}
	v := putRule(t, s, r)
	id := uuid.New()
	_, err := s.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
			index_value, event_id, partition, issued_at, expires_at)
		VALUES ($1, $2, 'r', $3, 1, 'perf', 'show', '{presale}', 12, 'p/e1', 0, now(), now() + interval '1 hour')`, id, fan, v)
	must(t, err)
	must(t, s.RecordAttempt(ctx, store.Attempt{OfferID: id, Channel: offers.ChannelSMS, Outcome: store.AttemptSending}))

	got, err := s.Deliverable(ctx, id)
	must(t, err)
	d, err := s.Delivery(ctx, id)
	must(t, err)
	dc, err := s.DeliveryContext(ctx, id)
	must(t, err)
	c, err := s.OfferContent(ctx, id)
	must(t, err)
	if want := (store.Deliverable{Delivery: d, Context: dc, Content: c}); !reflect.DeepEqual(got, want) {
		t.Fatalf("Deliverable %+v\nwant %+v", got, want)
	}
	if _, open := got.Context.Open[offers.ChannelSMS]; !open || got.Content.Templates == nil || got.Content.Templates.SMS != r.Templates.SMS {
		t.Fatalf("Deliverable lost the open attempt or the templates: %+v", got)
	}
	if _, err := s.Deliverable(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown offer: %v", err)
	}

	// Many at once: each as if read alone; unknown offers are left out.
	other := uuid.New()
	_, err = s.Pool().Exec(ctx, `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id, perks,
			index_value, event_id, partition, issued_at, expires_at)
		VALUES ($1, $2, 'r', $3, 2, 'perf', 'show', '{presale}', 14, 'p/e2', 0, now(), now() + interval '2 hours')`, other, fan, v)
	must(t, err)
	many, err := s.Deliverables(ctx, []uuid.UUID{id, uuid.New(), other})
	must(t, err)
	if len(many) != 2 {
		t.Fatalf("Deliverables returned %d offers, want the 2 that exist", len(many))
	}
	for _, oid := range []uuid.UUID{id, other} {
		alone, err := s.Deliverable(ctx, oid)
		must(t, err)
		if !reflect.DeepEqual(many[oid], alone) {
			t.Fatalf("offer %s read with others %+v\nalone %+v", oid, many[oid], alone)
		}
	}
	if len(many[other].Context.Open) != 0 || len(many[id].Context.Open) != 1 {
		t.Fatalf("open attempts mixed up between offers: %v, %v", many[id].Context.Open, many[other].Context.Open)
	}
}
