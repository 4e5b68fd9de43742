package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/store"
)

// Retention (#7): records older than the age go, newer ones stay, and an old
// offer keeps a summary of the attempts it loses.
func TestPurgeBeforeKeepsAnAuditSummary(t *testing.T) {
	s := open(t)
	fan := catalog(t, s)
	ctx := t.Context()
	now := time.Now()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	cutoff := now.Add(-90 * 24 * time.Hour)
	oldOffer, newOffer := uuid.New(), uuid.New()
	_, from, _ := s.LoadPartition(ctx, store.PartitionID{Group: "g", Topic: "t"})
	_, err := s.Commit(ctx, store.Checkpoint{PartitionID: store.PartitionID{Group: "g", Topic: "t"}, From: from, To: 1, Delta: pipeline.Delta{
		Offers: []offers.Offer{
			{ID: oldOffer, FanID: fan, RuleID: "r", RuleVersion: 1, Tier: 1, PerformerID: "perf", ShowID: "show",
				Perks: []string{"x"}, EventID: "e1", IssuedAt: old, ExpiresAt: old.Add(time.Hour)},
			{ID: newOffer, FanID: fan, RuleID: "r", RuleVersion: 1, Tier: 2, PerformerID: "perf", ShowID: "show",
				Perks: []string{"x"}, EventID: "e2", IssuedAt: recent, ExpiresAt: recent.Add(time.Hour)},
		},
	}}, nil)
	must(t, err)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, at := range []time.Time{old, old, recent} {
		exec(`INSERT INTO contributions (fan_id, performer_id, signal, points, event_id, at) VALUES ($1, 'perf', 'follow', 1, 'e', $2)`, fan, at)
		exec(`INSERT INTO offer_decisions (fan_id, rule_id, rule_version, tier, reason, index_value, event_id, at)
			VALUES ($1, 'r', 1, 1, 'no_session', 1, 'e', $2)`, fan, at)
		exec(`INSERT INTO conversions (fan_id, show_id, event_id, quantity, at) VALUES ($1, 'show', 'e', 1, $2)`, fan, at)
	}
	for _, a := range []struct {
		offer            uuid.UUID
		channel, outcome string
		at               time.Time
	}{
		{oldOffer, "sms", "failed", old}, {oldOffer, "email", "unknown", old.Add(time.Minute)},
		{oldOffer, "email", "accepted", old.Add(2 * time.Minute)}, {newOffer, "sms", "accepted", recent},
	} {
		exec(`INSERT INTO delivery_attempts (offer_id, channel, outcome, attempted_at) VALUES ($1, $2, $3, $4)`, a.offer, a.channel, a.outcome, a.at)
	}

	p, err := s.PurgeBefore(ctx, cutoff)
	must(t, err)
	if want := (store.Purged{Contributions: 2, Decisions: 2, Conversions: 2, Attempts: 3}); p != want {
		t.Fatalf("purged %+v, want %+v", p, want)
	}
	count := func(sql string, args ...any) (n int) {
		t.Helper()
		must(t, s.Pool().QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	for _, table := range []string{"contributions", "offer_decisions", "conversions"} {
		if n := count(`SELECT count(*) FROM ` + table); n != 1 {
			t.Errorf("%s: %d rows left, want the recent one", table, n)
		}
	}
	if n := count(`SELECT count(*) FROM delivery_attempts WHERE offer_id = $1`, newOffer); n != 1 {
		t.Errorf("the recent offer has %d attempts, want 1", n)
	}
	if n := count(`SELECT count(*) FROM offers`); n != 2 {
		t.Errorf("%d offers left, want both", n)
	}
	var raw []byte
	must(t, s.Pool().QueryRow(ctx, `SELECT attempt_summary FROM offers WHERE id = $1`, oldOffer).Scan(&raw))
	var sum struct {
		Attempts int            `json:"attempts"`
		Channels []string       `json:"channels"`
		Outcomes map[string]int `json:"outcomes"`
		First    time.Time      `json:"first_attempt_at"`
		Last     time.Time      `json:"last_attempt_at"`
	}
	must(t, json.Unmarshal(raw, &sum))
	if sum.Attempts != 3 || len(sum.Channels) != 2 || sum.Outcomes["failed"] != 1 || sum.Outcomes["unknown"] != 1 ||
		sum.Outcomes["accepted"] != 1 || !sum.First.Equal(old.Truncate(time.Microsecond)) || !sum.Last.Equal(old.Add(2*time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("summary %s", raw)
	}
	// A second pass finds nothing more and leaves the summary.
	p, err = s.PurgeBefore(ctx, cutoff)
	must(t, err)
	if p.Total() != 0 {
		t.Errorf("second pass purged %+v", p)
	}
	if n := count(`SELECT count(*) FROM offers WHERE attempt_summary IS NOT NULL`); n != 1 {
		t.Errorf("%d offers with a summary after the second pass, want 1", n)
	}
}
