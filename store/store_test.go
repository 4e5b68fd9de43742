package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/internal/pgtemp"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/schedules"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
	"github.com/crescendo-hq/crescendo/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Config{URL: pgtemp.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// catalog stores a performer, show, rule and fan, and returns the fan.
func catalog(t *testing.T, s *store.Store) uuid.UUID {
	t.Helper()
	ctx := t.Context()
	fan := uuid.New()
	must(t, s.PutPartner(ctx, store.Partner{ID: "p", Name: "P", APIKey: "key"}))
	must(t, s.PutPerformer(ctx, "perf", "Perf"))
	must(t, s.PutShow(ctx, store.Show{ID: "show", PerformerID: "perf", Name: "Show", StartsAt: time.Now(), VenueName: "V", VenueLat: 1, VenueLon: 2}))
	putRule(t, s, rule(10))
	must(t, s.PutFan(ctx, store.Fan{ID: fan, DisplayName: "Fan", Email: "f@example.com", TimeZone: "UTC"}))
	must(t, s.LinkAccount(ctx, "p", "user-1", fan))
	return fan
}

func rule(threshold float64) offers.Rule {
	return offers.Rule{ID: "r", PerformerID: "perf", ShowID: "show",
		Tiers: []offers.Tier{{Threshold: threshold, Perks: []string{"presale"}}}, Channels: []offers.Channel{offers.ChannelEmail}, Lifetime: time.Hour}
}

func putRule(t *testing.T, s *store.Store, r offers.Rule) int {
	t.Helper()
	v, err := s.PutRule(t.Context(), r)
	must(t, err)
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	url := pgtemp.New(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(context.Background(), store.Config{URL: url})
			if err == nil {
				ok, cerr := s.MigrationsCurrent(context.Background())
				if cerr == nil && !ok {
					cerr = errors.New("migrations pending after Open")
				}
				err = cerr
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

func TestCommitIsFencedAndOffersAreUnique(t *testing.T) {
	s := open(t)
	fan := catalog(t, s)
	ctx := t.Context()
	pid := store.PartitionID{Group: "g", Topic: "t", Partition: 3}

	_, from, err := s.LoadPartition(ctx, pid)
	if err != nil || from != store.OffsetStart {
		t.Fatalf("fresh partition offset %d, %v", from, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	key := pipeline.PairKey{Fan: fan, Performer: "perf"}
	ctr := pairState(t, 70)
	offer := func() offers.Offer {
		return offers.Offer{ID: uuid.New(), FanID: fan, RuleID: "r", RuleVersion: 1, Tier: 1, PerformerID: "perf", ShowID: "show",
			Perks: []string{"presale"}, IndexValue: 12, EventID: "p/e1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	var enqueued []uuid.UUID
	enqueue := func(_ context.Context, _ pgx.Tx, jobs []store.DeliveryJob) error {
		for _, j := range jobs {
			enqueued = append(enqueued, j.OfferID)
		}
		return nil
	}
	first := offer()
	inserted, err := s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: from, To: 10, Delta: pipeline.Delta{
		Pairs:    []pipeline.PairEntry{{Key: key, State: ctr}},
		Sessions: []pipeline.SessionEntry{{Fan: fan, Session: sessions.Session{Start: now, Last: now}}},
		Offers:   []offers.Offer{first},
		Contributions: []pipeline.Contribution{{PairKey: key, Contribution: scoring.Contribution{
			Signal: scoring.SignalStreaming, Points: 1, EventID: "p/e1", At: now, Detail: "70 minutes"}}},
	}}, enqueue)
	if err != nil || len(inserted) != 1 || inserted[0] != first.ID {
		t.Fatalf("first commit: %v %v", inserted, err)
	}

	// A stale owner still believes the offset is OffsetStart: it is fenced and changes nothing.
	other := pairState(t, 200)
	_, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: from, To: 20, Delta: pipeline.Delta{
		Pairs: []pipeline.PairEntry{{Key: key, State: other}},
	}}, enqueue)
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale commit: %v, want ErrFenced", err)
	}

	// The owner goes on; a second offer for the same fan, rule and tier is refused by the database.
	inserted, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: 10, To: 15, Delta: pipeline.Delta{Offers: []offers.Offer{offer()}}}, enqueue)
	if err != nil || len(inserted) != 0 {
		t.Fatalf("duplicate offer inserted: %v %v", inserted, err)
	}
	if len(enqueued) != 1 || enqueued[0] != first.ID {
		t.Fatalf("enqueued %v, want only the first offer", enqueued)
	}

	st, next, err := s.LoadPartition(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if next != 15 {
		t.Errorf("next offset %d, want 15", next)
	}
	if got := st.Pairs[key]; got != ctr {
		t.Errorf("pair state %+v, want %+v (the fenced write must not land)", got, ctr)
	}
	contribs, err := s.Contributions(ctx, fan, "perf")
	if err != nil || len(contribs) != 1 || contribs[0].EventID != "p/e1" || contribs[0].Signal != scoring.SignalStreaming {
		t.Errorf("contributions %+v, %v", contribs, err)
	}
	if s := st.Sessions[fan]; !s.Start.Equal(now) || !s.Last.Equal(now) {
		t.Errorf("session %+v", s)
	}
	if at, ok := st.Issued[first.Key()]; len(st.Issued) != 1 || !ok || !at.Equal(first.IssuedAt) {
		t.Errorf("issued %v", st.Issued)
	}
	// Another partition's state is its own.
	st, _, err = s.LoadPartition(ctx, store.PartitionID{Group: "g", Topic: "t", Partition: 4})
	if err != nil || len(st.Pairs) != 0 {
		t.Errorf("partition 4 sees %d pairs, %v", len(st.Pairs), err)
	}
}

func TestExpireOffersAndRunJobOnceAcrossCallers(t *testing.T) {
	s := open(t)
	fan := catalog(t, s)
	ctx := t.Context()
	past := time.Now().Add(-2 * time.Hour)
	_, from, _ := s.LoadPartition(ctx, store.PartitionID{Group: "g", Topic: "t"})
	_, err := s.Commit(ctx, store.Checkpoint{PartitionID: store.PartitionID{Group: "g", Topic: "t"}, From: from, To: 1, Delta: pipeline.Delta{
		Offers: []offers.Offer{{ID: uuid.New(), FanID: fan, RuleID: "r", RuleVersion: 1, Tier: 1, PerformerID: "perf", ShowID: "show",
			Perks: []string{"x"}, EventID: "e", IssuedAt: past, ExpiresAt: past.Add(time.Hour)}},
	}}, nil)
	must(t, err)

	// Two replicas run the job at once: exactly one runs it, the other is told it is busy.
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.RunJob(ctx, schedules.Run{Job: "offer-expiry"}, func(ctx context.Context) (int64, error) {
				entered <- struct{}{}
				<-release
				return s.ExpireOffers(ctx, time.Now())
			})
			done <- err
		}()
	}
	<-entered
	// While the first holds the job, the second returns without entering it.
	if err := <-done; !errors.Is(err, store.ErrJobBusy) {
		t.Fatalf("second caller: %v, want ErrJobBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("running caller: %v", err)
	}
	if len(entered) != 0 {
		t.Fatal("both callers entered the job")
	}
	runs, err := s.JobRuns(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Outcome != "ok" || runs[0].Rows != 1 || runs[0].FinishedAt == nil {
		t.Fatalf("runs %+v", runs)
	}
	stored, err := s.Offers(ctx)
	if err != nil || len(stored) != 1 || stored[0].Status != store.OfferExpired {
		t.Fatalf("offers %+v, %v", stored, err)
	}
	// A failing job is recorded with its error.
	boom := errors.New("boom")
	if _, err := s.RunJob(ctx, schedules.Run{Job: "failing"}, func(context.Context) (int64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing job: %v", err)
	}
	runs, _ = s.JobRuns(ctx, "", 1)
	if runs[0].Job != "failing" || runs[0].Outcome != "error" || runs[0].Error != "boom" {
		t.Fatalf("failed run recorded as %+v", runs[0])
	}
}

func TestRulesAreVersionedAndDirectoryFollowsLinks(t *testing.T) {
	s := open(t)
	fan := catalog(t, s)
	ctx := t.Context()
	putRule(t, s, rule(10)) // unchanged: same version
	rules, err := s.Rules(ctx, true)
	if err != nil || len(rules) != 1 || rules[0].Version != 1 {
		t.Fatalf("rules %+v, %v", rules, err)
	}
	putRule(t, s, rule(20))
	rules, _ = s.Rules(ctx, true)
	if rules[0].Version != 2 || rules[0].Tiers[0].Threshold != 20 || rules[0].Lifetime != time.Hour {
		t.Fatalf("changed rule %+v", rules[0])
	}
	if _, err := s.PutRule(ctx, offers.Rule{ID: "bad"}); err == nil {
		t.Fatal("invalid rule stored")
	}

	dir, err := s.NewDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := dir.Account("p", "user-1"); !ok || got.Fan != fan || got.Scope != nil || got.Home != "user-1" {
		t.Fatalf("directory: %+v %v", got, ok)
	}
	if !dir.KnownPartner("p") || dir.KnownPartner("q") {
		t.Fatal("partner lookup wrong")
	}
	if _, ok := dir.Account("p", "user-2"); ok {
		t.Fatal("unlinked account resolved")
	}
	_, err = s.Pool().Exec(ctx, "DELETE FROM fans WHERE id = $1", fan)
	must(t, err)
	must(t, dir.Refresh(ctx))
	if _, ok := dir.Account("p", "user-1"); ok {
		t.Fatal("deleted fan still resolved after refresh")
	}
	id, ok, err := s.PartnerByKey(ctx, "key")
	if err != nil || !ok || id != "p" {
		t.Fatalf("partner by key: %q %v %v", id, ok, err)
	}
	if _, ok, _ := s.PartnerByKey(ctx, "nope"); ok {
		t.Fatal("wrong key accepted")
	}
}

func pairState(t testing.TB, minutes int) scoring.PairState {
	scorer, err := scoring.NewScorer(scoring.Config{Performers: []scoring.Performer{{ID: "perf", Names: []string{"Perf"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var st scoring.PairState
	scorer.Apply(nil, &st, events.Event{ID: "1", Source: "p", Subject: "u", Type: events.TypeListen, Time: time.Now().UTC(),
		Listen: &events.Listen{Performer: "perf", MsPlayed: int64(minutes) * 60_000}}, "perf")
	return st
}

func TestFanHomeIsTheAccountItWasRegisteredWith(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	fan := catalog(t, s) // linked first through p/user-1
	must(t, s.PutPartner(ctx, store.Partner{ID: "q", Name: "Q", APIKey: "key-q"}))
	must(t, s.LinkAccount(ctx, "q", "someone-else", fan))
	dir, err := s.NewDirectory(ctx)
	must(t, err)
	for _, acct := range [][2]string{{"p", "user-1"}, {"q", "someone-else"}} {
		got, ok := dir.Account(acct[0], acct[1])
		if !ok || got.Fan != fan || got.Home != "user-1" {
			t.Errorf("%s/%s: %+v %v, want fan %v at home user-1", acct[0], acct[1], got, ok, fan)
		}
	}
	// The home stays when the account it came from goes: the state does not move.
	_, err = s.Pool().Exec(ctx, "DELETE FROM linked_accounts WHERE partner_id = 'p'")
	must(t, err)
	must(t, dir.Refresh(ctx))
	if got, ok := dir.Account("q", "someone-else"); !ok || got.Home != "user-1" {
		t.Fatalf("after unlinking the first account: %+v %v", got, ok)
	}
}

// A run left "running" by a process killed mid-job is closed as abandoned by
// the next run, which could only take the lock because nobody holds it.
func TestRunJobClosesAbandonedRuns(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.Pool().Exec(ctx, `INSERT INTO job_runs (job, started_at) VALUES ('sweep', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	_, err := s.RunJob(ctx, schedules.Run{Job: "sweep"}, func(context.Context) (int64, error) { return 1, nil })
	must(t, err)
	runs, err := s.JobRuns(ctx, "", 10)
	must(t, err)
	outcomes := map[string]int{}
	for _, r := range runs {
		outcomes[r.Outcome]++
	}
	if outcomes["abandoned"] != 1 || outcomes["ok"] != 1 || outcomes["running"] != 0 {
		t.Fatalf("outcomes = %v", outcomes)
	}
}

// Every replica's cron fires for the same activation; only the first to take
// the lock runs it, even when the others come after it has finished. A run by
// hand is not an activation, and the next activation runs again.
func TestRunJobServesEachActivationOnce(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	hourly := func(t time.Time) time.Time { return t.Truncate(time.Hour).Add(time.Hour) }
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock := func(d time.Duration) func() time.Time { return func() time.Time { return at.Add(d) } }
	ran := 0
	fn := func(context.Context) (int64, error) { ran++; return 0, nil }
	run := func(instance string, d time.Duration, scheduled bool) error {
		_, err := s.RunJob(ctx, schedules.Run{Job: "hourly", Scheduled: scheduled, Next: hourly, Instance: instance, Now: clock(d)}, fn)
		return err
	}
	must(t, run("a", 2*time.Millisecond, true))
	if err := run("b", 40*time.Millisecond, true); !errors.Is(err, store.ErrJobServed) || !errors.Is(err, store.ErrJobBusy) {
		t.Fatalf("second replica for the same activation: %v, want ErrJobServed", err)
	}
	must(t, run("c", 20*time.Minute, false)) // by hand: runs whatever the schedule
	if err := run("c", 30*time.Minute, true); !errors.Is(err, store.ErrJobServed) {
		t.Fatalf("late replica for the same activation: %v", err)
	}
	must(t, run("b", time.Hour+time.Millisecond, true))
	if ran != 3 {
		t.Fatalf("ran %d times, want 3", ran)
	}
	runs, err := s.JobRuns(ctx, "hourly", 10)
	must(t, err)
	var got []string
	for _, r := range runs {
		got = append(got, fmt.Sprintf("%s/%v", r.Instance, r.Scheduled))
	}
	if want := []string{"b/true", "c/false", "a/true"}; !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
}

// The crash sweep closes runs of jobs whose lock is free, not of a job that
// another process is running right now.
func TestCloseAbandonedRunsSparesHeldJobs(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, job := range []string{"nightly", "busy"} {
		if _, err := s.Pool().Exec(ctx, `INSERT INTO job_runs (job, started_at) VALUES ($1, now() - interval '1 hour')`, job); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.RunJob(ctx, schedules.Run{Job: "busy"}, func(context.Context) (int64, error) {
			close(held)
			<-release
			return 0, nil
		})
		done <- err
	}()
	<-held
	n, err := s.CloseAbandonedRuns(ctx, time.Now())
	close(release)
	must(t, err)
	must(t, <-done)
	if n != 1 {
		t.Fatalf("closed %d runs, want nightly's 1", n)
	}
	runs, err := s.JobRuns(ctx, "nightly", 10)
	must(t, err)
	if len(runs) != 1 || runs[0].Outcome != "abandoned" {
		t.Fatalf("nightly runs %+v", runs)
	}
}

func TestWALPositionMovesWithWrites(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	before, err := s.WALPosition(ctx)
	must(t, err)
	must(t, s.PutPartner(ctx, store.Partner{ID: "wal", Name: "WAL", APIKey: "key-wal"}))
	after, err := s.WALPosition(ctx)
	must(t, err)
	if after <= before {
		t.Fatalf("WAL position went from %d to %d across a write", before, after)
	}
}

// TestContributionsRoundTrip writes explanation rows through a checkpoint,
// in the binary COPY format the store encodes itself, and reads them back:
// every field as written, times at Postgres's microsecond precision.
func TestContributionsRoundTrip(t *testing.T) {
	s := open(t)
	fan := catalog(t, s)
	ctx := t.Context()
	pid := store.PartitionID{Group: "g", Topic: "t", Partition: 1}
	_, from, err := s.LoadPartition(ctx, pid)
	must(t, err)
	base := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	want := []scoring.Contribution{
		{Signal: scoring.SignalStreaming, Points: 1, EventID: "https://p.example/e1", At: base, Detail: "70 minutes"},
		{Signal: scoring.SignalAffinity, Points: 2.5, EventID: "p/é2", At: base.Add(time.Second), Detail: `"love" near "aurora lane" — ünïcode`},
		{Signal: scoring.SignalFollow, Points: -0.125, EventID: "p/e3", At: base.Add(2 * time.Second)},
		{Signal: scoring.SignalAttendance, Points: 1e300, EventID: "p/e4", At: time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{Signal: scoring.SignalMerch, Points: math.SmallestNonzeroFloat64, EventID: "p/e5", At: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
	}
	key := pipeline.PairKey{Fan: fan, Performer: "perf"}
	var cs []pipeline.Contribution
	for _, c := range want {
		cs = append(cs, pipeline.Contribution{PairKey: key, Contribution: c})
	}
	// Another pair's rows stay apart.
	cs = append(cs, pipeline.Contribution{PairKey: pipeline.PairKey{Fan: fan, Performer: "other"}, Contribution: want[0]})
	_, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: from, To: 1, Delta: pipeline.Delta{Contributions: cs}}, nil)
	must(t, err)
	got, err := s.Contributions(ctx, fan, "perf")
	must(t, err)
	slices.SortFunc(want, func(a, b scoring.Contribution) int { return a.At.Compare(b.At) })
	if len(got) != len(want) {
		t.Fatalf("read %d contributions, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Signal != w.Signal || g.Points != w.Points || g.EventID != w.EventID || g.Detail != w.Detail ||
			!g.At.Equal(w.At.Truncate(time.Microsecond)) {
			t.Errorf("contribution %d: got %+v, want %+v", i, g, w)
		}
	}
	if other, err := s.Contributions(ctx, fan, "other"); err != nil || len(other) != 1 || other[0].EventID != "https://p.example/e1" {
		t.Errorf("other pair: %+v, %v", other, err)
	}
}

// A store told to write state version 3 (a rolling upgrade from a release
// that reads no newer) writes its deltas and snapshots in it, and reads them
// back; a version it cannot write is refused at Open.
func TestStateVersionSetsTheChunksWritten(t *testing.T) {
	url := pgtemp.New(t)
	if _, err := store.Open(t.Context(), store.Config{URL: url, StateVersion: 5}); err == nil {
		t.Fatal("Open accepted state version 5")
	}
	s, err := store.Open(t.Context(), store.Config{URL: url, StateVersion: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	fan := uuid.New()
	now := time.Now().UTC().Truncate(time.Microsecond)
	key := pipeline.PairKey{Fan: fan, Performer: "perf"}
	st := pairState(t, 70)
	sess := sessions.Session{Start: now, Last: now.Add(time.Minute)}
	pid := store.PartitionID{Group: "g", Topic: "t", Partition: 0}
	_, from, err := s.LoadPartition(ctx, pid)
	must(t, err)
	_, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: from, To: 5, Delta: pipeline.Delta{
		Pairs: []pipeline.PairEntry{{Key: key, State: st}}, Sessions: []pipeline.SessionEntry{{Fan: fan, Session: sess}}}}, nil)
	must(t, err)
	_, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: 5, To: 9, Snapshot: &pipeline.State{
		Pairs: map[pipeline.PairKey]scoring.PairState{key: st}, Sessions: map[uuid.UUID]sessions.Session{fan: sess}}}, nil)
	must(t, err)
	_, err = s.Commit(ctx, store.Checkpoint{PartitionID: pid, From: 9, To: 12, Delta: pipeline.Delta{
		Sessions: []pipeline.SessionEntry{{Fan: fan, Session: sessions.Session{Start: now, Last: now.Add(2 * time.Minute)}}}}}, nil)
	must(t, err)
	rows, err := s.Pool().Query(ctx, `SELECT kind, get_byte(data, 0) FROM partition_state WHERE group_id = 'g' AND partition = 0 ORDER BY seq`)
	must(t, err)
	type chunk struct {
		Kind    string
		Version int
	}
	chunks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[chunk])
	must(t, err)
	if want := []chunk{{"snapshot", 3}, {"delta", 3}}; !slices.Equal(chunks, want) {
		t.Fatalf("state log %v; want %v", chunks, want)
	}
	state, next, err := s.LoadPartition(ctx, pid)
	must(t, err)
	if next != 12 || state.Pairs[key] != st || !state.Sessions[fan].Last.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("loaded offset %d, pair %+v, session %+v", next, state.Pairs[key], state.Sessions[fan])
	}
}
