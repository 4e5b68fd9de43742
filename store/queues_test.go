package store_test

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/queue"
	"github.com/crescendo-hq/crescendo/store"
)

// saleOpens is when the test sales open; every join and batch is timed from it.
var saleOpens = time.Date(2031, 3, 1, 10, 0, 0, 0, time.UTC)

// queueCatalog stores organization acme owning performer perf with a show
// (starting a month after saleOpens) and a rule for it, and partner p.
func queueCatalog(t *testing.T, s *store.Store, shows ...string) {
	t.Helper()
	ctx := t.Context()
	_, err := s.CreateOrganization(ctx, "acme", "Acme")
	must(t, err)
	must(t, s.PutPerformer(ctx, "perf", "Perf"))
	must(t, s.AssignPerformer(ctx, "acme", "perf"))
	must(t, s.PutPartner(ctx, store.Partner{ID: "p", Name: "P", APIKey: "key"}))
	for _, show := range shows {
		must(t, s.PutShow(ctx, store.Show{ID: show, PerformerID: "perf", Name: show, StartsAt: saleOpens.AddDate(0, 1, 0),
			VenueName: "V", VenueLat: 1, VenueLon: 2}))
		_, err := s.Pool().Exec(ctx, `INSERT INTO rules (id, performer_id, show_id, tiers, channels, lifetime_seconds)
			VALUES ($1, 'perf', $2, '[{"threshold": 10}, {"threshold": 20}]', '{email}', 3600)`, "rule-"+show, show)
		must(t, err)
	}
}

// seedFans stores n fans linked to partner p as users prefix0, prefix1, ….
func seedFans(t *testing.T, s *store.Store, prefix string, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	bulk := make([]store.BulkFan, n)
	for i := range n {
		ids[i] = uuid.New()
		bulk[i] = store.BulkFan{Fan: store.Fan{ID: ids[i], TimeZone: "UTC"}, PartnerUserID: fmt.Sprintf("%s%d", prefix, i)}
	}
	must(t, s.BulkLoadFans(t.Context(), "p", bulk))
	return ids
}

// testOffer is an offer seedOffers stores.
type testOffer struct {
	fan     uuid.UUID
	tier    int
	status  string
	expires time.Time
}

// seedOffers stores offers for a show in one statement.
func seedOffers(t *testing.T, s *store.Store, show string, list ...testOffer) {
	t.Helper()
	var (
		fans     []uuid.UUID
		tiers    []int32
		statuses []string
		expiries []time.Time
	)
	for _, o := range list {
		fans, tiers, statuses, expiries = append(fans, o.fan), append(tiers, int32(o.tier)), append(statuses, o.status), append(expiries, o.expires)
	}
	_, err := s.Pool().Exec(t.Context(), `INSERT INTO offers (id, fan_id, rule_id, rule_version, tier, performer_id, show_id,
			perks, index_value, event_id, partition, status, issued_at, expires_at)
		SELECT gen_random_uuid(), o.fan, $1, 1, o.tier, 'perf', $2, '{presale}', 50, 'p/e', 0, o.status,
			o.expires - interval '1 hour', o.expires
		FROM unnest($3::uuid[], $4::int[], $5::text[], $6::timestamptz[]) AS o (fan, tier, status, expires)`,
		"rule-"+show, show, fans, tiers, statuses, expiries)
	must(t, err)
}

// openSale is a store with queueCatalog's show "show" on sale from saleOpens.
func openSale(t *testing.T, size int, interval time.Duration, policy queue.Policy) *store.Store {
	t.Helper()
	s := open(t)
	queueCatalog(t, s, "show")
	putSale(t, s, "show", size, interval, policy)
	return s
}

func putSale(t *testing.T, s *store.Store, show string, size int, interval time.Duration, policy queue.Policy) {
	t.Helper()
	_, err := s.PutSale(t.Context(), "acme", store.Sale{ShowID: show, OpensAt: saleOpens, Settings: queue.Settings{
		BatchSize: size, BatchInterval: interval, Automated: policy,
		Sections: queue.Sections{2: "Floor A", 1: "Lower bowl", 0: "General"},
	}})
	must(t, err)
}

// joiner is one fan of the concurrent test and what the test expects of them.
type joiner struct {
	fan        uuid.UUID
	want       queue.Queue
	start, end time.Time // monotonic clock readings around the join
	entry      store.QueueEntry
	created    bool
	err        error
}

// TestThousandConcurrentJoinersGetConsistentPositions has 1,000 fans (and a
// second join for every seventh) join one sale at once: tier-2 and tier-1
// fans, general fans (some with lapsed offers) and automated accounts that
// have offers but are relegated.
func TestThousandConcurrentJoinersGetConsistentPositions(t *testing.T) {
	s := openSale(t, 100, 30*time.Second, queue.Relegate)
	ctx := t.Context()
	const n = 1000
	fans := seedFans(t, s, "u", n)
	joiners := make([]*joiner, n)
	live := saleOpens.Add(time.Hour)
	var seeded []testOffer
	seedOffer := func(fan uuid.UUID, tier int, status string, expires time.Time) {
		seeded = append(seeded, testOffer{fan, tier, status, expires})
	}
	for i, fan := range fans {
		j := &joiner{fan: fan}
		switch i % 10 {
		case 0, 1:
			j.want = 2
			seedOffer(fan, 1, "delivered", live)
			seedOffer(fan, 2, []string{"issued", "redeemed"}[i%20/10], live)
		case 2, 3, 4:
			j.want = 1
			seedOffer(fan, 1, "delivered", live)
		case 5:
			j.want = queue.General // a tier-2 offer that lapsed
			seedOffer(fan, 2, "expired", live)
		case 6:
			j.want = queue.General // issued, but past its expiry before the expiry job ran
			seedOffer(fan, 2, "issued", saleOpens.Add(-time.Minute))
		case 7, 8:
			j.want = queue.General
		case 9:
			j.want = queue.Relegated
			seedOffer(fan, 2, "delivered", live)
			must(t, s.SetFanClassification(ctx, fan, queue.Automated, "ticket purchases every 2 s"))
		}
		if i%10 == 7 {
			must(t, s.SetFanClassification(ctx, fan, queue.Human, "friends"))
		}
		joiners[i] = j
	}
	seedOffers(t, s, "show", seeded...)

	started := time.Now()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	twins := make([]*joiner, 0, n/7+1)
	join := func(j *joiner) {
		defer wg.Done()
		<-gate
		j.start = time.Now()
		j.entry, j.created, j.err = s.JoinQueue(ctx, "show", j.fan, saleOpens)
		j.end = time.Now()
	}
	for i, j := range joiners {
		wg.Add(1)
		go join(j)
		if i%7 == 0 {
			twin := &joiner{fan: j.fan, want: j.want}
			twins = append(twins, twin)
			wg.Add(1)
			go join(twin)
		}
	}
	close(gate)
	wg.Wait()
	t.Logf("%d joins (%d of them repeated) in %s", n+len(twins), len(twins), time.Since(started))

	bySeq := map[queue.Queue][]*joiner{}
	for _, j := range joiners {
		if j.err != nil {
			t.Fatalf("join: %v", j.err)
		}
		if j.entry.Queue != j.want {
			t.Errorf("fan %s joined %v, want %v", j.fan, j.entry.Queue, j.want)
		}
		bySeq[j.entry.Queue] = append(bySeq[j.entry.Queue], j)
	}
	// Each fan is in once; the twin that lost the race got the winner's entry.
	byFan := map[uuid.UUID]*joiner{}
	for _, j := range joiners {
		byFan[j.fan] = j
	}
	for _, tw := range twins {
		j := byFan[tw.fan]
		if tw.err != nil || tw.entry.Seq != j.entry.Seq || tw.entry.Queue != j.entry.Queue || tw.created == j.created {
			t.Errorf("twin joins of %s: (%v %d created=%v %v) and (%v %d created=%v %v)", tw.fan,
				j.entry.Queue, j.entry.Seq, j.created, j.err, tw.entry.Queue, tw.entry.Seq, tw.created, tw.err)
		}
	}
	for _, j := range joiners {
		// The join created the entry, or its twin did.
		if !j.created && !slices.ContainsFunc(twins, func(tw *joiner) bool { return tw.fan == j.fan && tw.created }) {
			t.Errorf("fan %s: no join created the entry", j.fan)
		}
	}

	// Sequence numbers are 1..n in every queue, and first come, first served:
	// a join that returned before another began has the smaller number.
	for q, js := range bySeq {
		slices.SortFunc(js, func(a, b *joiner) int { return cmp.Compare(a.entry.Seq, b.entry.Seq) })
		for i, j := range js {
			if j.entry.Seq != int64(i+1) {
				t.Fatalf("%v: sequence numbers %d at index %d; want 1..%d without gaps or duplicates", q, j.entry.Seq, i, len(js))
			}
		}
		for _, a := range js {
			for _, b := range js {
				if a.end.Before(b.start) && a.entry.Seq > b.entry.Seq {
					t.Errorf("%v: fan %d finished joining before fan %d began, yet is behind", q, a.entry.Seq, b.entry.Seq)
				}
			}
		}
	}
	if got := []int{len(bySeq[2]), len(bySeq[1]), len(bySeq[queue.General]), len(bySeq[queue.Relegated])}; !slices.Equal(got, []int{200, 300, 400, 100}) {
		t.Errorf("queue sizes %v", got)
	}

	// Positions now are a permutation of 1..n in admission order, and no fan
	// is further forward than when they joined.
	final := make([]store.QueueEntry, n)
	for i, j := range joiners {
		e, err := s.QueueStatus(ctx, "show", j.fan)
		if err != nil {
			t.Fatal(err)
		}
		if e.Position < j.entry.Position {
			t.Errorf("fan %s moved forward from %d to %d with nobody admitted", j.fan, j.entry.Position, e.Position)
		}
		final[i] = e
	}
	slices.SortFunc(final, func(a, b store.QueueEntry) int {
		return cmp.Or(cmp.Compare(b.Queue, a.Queue), cmp.Compare(a.Seq, b.Seq))
	})
	for i, e := range final {
		if e.Position != int64(i+1) {
			t.Fatalf("entry %d in admission order (%v #%d) has position %d", i, e.Queue, e.Seq, e.Position)
		}
	}
	if e := final[0]; e.Section != "Floor A" || e.Tier != 2 {
		t.Errorf("first fan: %+v", e)
	}
	if e := final[n-1]; e.Section != "General" || e.Class != queue.Automated || e.Tier != 2 {
		t.Errorf("last fan: %+v", e)
	}

	// Joining again changes nothing.
	again, created, err := s.JoinQueue(ctx, "show", joiners[3].fan, saleOpens.Add(time.Minute))
	if err != nil || created {
		t.Fatalf("second join: created=%v %v", created, err)
	}
	if prev, _ := s.QueueStatus(ctx, "show", joiners[3].fan); again != prev {
		t.Errorf("second join %+v, status %+v", again, prev)
	}
	st, err := s.OrgSale(ctx, "acme", "show")
	must(t, err)
	var joined int64
	for _, q := range st.Queues {
		joined += q.Joined
		if q.Waiting != q.Joined || q.Admitted != 0 {
			t.Errorf("queue %+v", q)
		}
	}
	if joined != n {
		t.Errorf("sale counts %d joined, want %d", joined, n)
	}
}

// together runs admit on n goroutines released at the same moment, as n
// replicas would, and returns how many each admitted.
func together(t *testing.T, n int, admit func() (int64, error)) []int64 {
	t.Helper()
	var wg sync.WaitGroup
	counts := make([]int64, n)
	gate := make(chan struct{})
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			var err error
			if counts[i], err = admit(); err != nil {
				t.Error(err)
			}
		}()
	}
	close(gate)
	wg.Wait()
	return counts
}

// admittedFans returns the fans admitted so far in the order of their queue and
// number, with the time and section of their admission.
func admittedFans(t *testing.T, s *store.Store, show string) []store.QueueEntry {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), `SELECT fan_id FROM queue_entries
		WHERE show_id = $1 AND admitted_at IS NOT NULL ORDER BY queue DESC, seq`, show)
	must(t, err)
	var out []store.QueueEntry
	for rows.Next() {
		var fan uuid.UUID
		must(t, rows.Scan(&fan))
		e, err := s.QueueStatus(t.Context(), show, fan)
		must(t, err)
		out = append(out, e)
	}
	must(t, rows.Err())
	return out
}

func TestBatchesAdmitInPriorityOrderAtTheOperatorsRate(t *testing.T) {
	s := openSale(t, 10, 30*time.Second, queue.Relegate)
	ctx := t.Context()
	// Joined in this order: 12 general, 5 automated, 5 tier-1, 3 tier-2.
	fans := seedFans(t, s, "u", 25)
	for i, fan := range fans {
		switch {
		case i >= 22:
			seedOffers(t, s, "show", testOffer{fan, 2, "delivered", saleOpens.Add(time.Hour)})
		case i >= 17:
			seedOffers(t, s, "show", testOffer{fan, 1, "delivered", saleOpens.Add(time.Hour)})
		case i >= 12:
			must(t, s.SetFanClassification(ctx, fan, queue.Automated, "ring"))
		}
		if _, _, err := s.JoinQueue(ctx, "show", fan, saleOpens.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	admit := func(at time.Duration, want int64) {
		t.Helper()
		n, err := s.AdmitNextBatch(ctx, "show", saleOpens.Add(at))
		if err != nil || n != want {
			t.Fatalf("batch at +%s admitted %d, %v; want %d", at, n, err, want)
		}
	}
	admit(-time.Second, 0) // before the sale opens
	admit(0, 10)
	got := admittedFans(t, s, "show")
	wantFans := append(slices.Clone(fans[22:25]), fans[17:22]...)
	wantFans = append(wantFans, fans[0:2]...)
	for i, e := range got {
		if e.FanID != wantFans[i] || !e.AdmittedAt.Equal(saleOpens) || e.Position != 0 {
			t.Errorf("admitted #%d: %+v, want fan %s", i, e, wantFans[i])
		}
	}
	if len(got) != 10 || got[0].Section != "Floor A" || got[3].Section != "Lower bowl" || got[9].Section != "General" {
		t.Fatalf("first batch: %+v", got)
	}
	// Those still waiting move up: the third general fan is next.
	if e, err := s.QueueStatus(ctx, "show", fans[2]); err != nil || e.Position != 1 || e.Admitted() {
		t.Errorf("next in line: %+v %v", e, err)
	}
	if e, err := s.QueueStatus(ctx, "show", fans[16]); err != nil || e.Position != 15 {
		t.Errorf("last relegated fan: %+v %v", e, err)
	}

	admit(29*time.Second, 0) // not due yet
	admit(31*time.Second, 10)
	// The next is due at +60s, on the grid, though that batch ran a second late.
	admit(59*time.Second, 0)
	// Eight replicas try at once: one batch, the last five fans.
	counts := together(t, 8, func() (int64, error) { return s.AdmitNextBatch(ctx, "show", saleOpens.Add(time.Minute)) })
	var total int64
	for _, n := range counts {
		total += n
		if n != 0 && n != 5 {
			t.Errorf("a caller admitted %d", n)
		}
	}
	if total != 5 {
		t.Fatalf("concurrent callers admitted %d in all (%v), want 5", total, counts)
	}
	got = admittedFans(t, s, "show")
	if len(got) != 25 {
		t.Fatalf("%d admitted, want 25", len(got))
	}
	seen := map[uuid.UUID]bool{}
	for _, e := range got {
		if seen[e.FanID] {
			t.Errorf("fan %s admitted twice", e.FanID)
		}
		seen[e.FanID] = true
	}
	for _, e := range got[20:] {
		if e.Queue != queue.Relegated || !e.AdmittedAt.Equal(saleOpens.Add(time.Minute)) {
			t.Errorf("last batch: %+v", e)
		}
	}
	st, err := s.OrgSale(ctx, "acme", "show")
	must(t, err)
	if !st.NextBatchAt.Equal(saleOpens.Add(90*time.Second)) || !st.LastBatchAt.Equal(saleOpens.Add(time.Minute)) {
		t.Errorf("next batch %s, last %v", st.NextBatchAt, st.LastBatchAt)
	}

	// Nobody waits: a batch admits nobody and does not count, so a fan who
	// joins long after is admitted by the next run, and the one after them
	// waits a full interval.
	admit(10*time.Minute, 0)
	late := seedFans(t, s, "late", 11)
	for _, fan := range late {
		_, _, err := s.JoinQueue(ctx, "show", fan, saleOpens.Add(10*time.Minute))
		must(t, err)
	}
	admit(10*time.Minute+time.Second, 10)
	admit(10*time.Minute+30*time.Second, 0)
	admit(10*time.Minute+31*time.Second, 1)
}

func TestAdmitDueAdmitsEverySaleOnceAcrossReplicas(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	queueCatalog(t, s, "show1", "show2", "show3")
	putSale(t, s, "show1", 3, time.Minute, queue.Relegate)
	putSale(t, s, "show2", 4, time.Minute, queue.Relegate)
	putSale(t, s, "show3", 4, time.Minute, queue.Relegate) // nobody joins
	fans := seedFans(t, s, "u", 10)
	for _, fan := range fans {
		for _, show := range []string{"show1", "show2"} {
			_, _, err := s.JoinQueue(ctx, show, fan, saleOpens)
			must(t, err)
		}
	}
	counts := together(t, 4, func() (int64, error) { return s.AdmitDue(ctx, saleOpens.Add(time.Second)) })
	if total := counts[0] + counts[1] + counts[2] + counts[3]; total != 7 {
		t.Fatalf("admitted %v, want 3 + 4 in all", counts)
	}
	n, err := s.AdmitDue(ctx, saleOpens.Add(59*time.Second))
	if err != nil || n != 0 {
		t.Fatalf("before the interval: %d, %v", n, err)
	}
	n, err = s.AdmitDue(ctx, saleOpens.Add(time.Minute))
	if err != nil || n != 7 {
		t.Fatalf("after the interval: %d, %v", n, err)
	}
}

func TestJoiningNeedsAnOpenSaleAndBarsAutomatedAccounts(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	queueCatalog(t, s, "show", "nosale")
	putSale(t, s, "show", 10, time.Minute, queue.Bar)
	fans := seedFans(t, s, "u", 2)
	must(t, s.SetFanClassification(ctx, fans[1], queue.Automated, "watch list"))
	for _, c := range []struct {
		show string
		fan  uuid.UUID
		at   time.Time
		want error
	}{
		{"nosale", fans[0], saleOpens, store.ErrNoSale},
		{"show", fans[0], saleOpens.Add(-time.Second), store.ErrSaleNotOpen},
		{"show", fans[0], saleOpens.AddDate(0, 1, 0), store.ErrSaleClosed},
		{"show", fans[1], saleOpens, queue.ErrBarred},
		{"show", uuid.New(), saleOpens, store.ErrNotFound},
	} {
		if _, _, err := s.JoinQueue(ctx, c.show, c.fan, c.at); !errors.Is(err, c.want) {
			t.Errorf("join %s at %s: %v, want %v", c.show, c.at, err, c.want)
		}
	}
	if _, err := s.QueueStatus(ctx, "show", fans[0]); !errors.Is(err, store.ErrNotInQueue) {
		t.Errorf("status before joining: %v", err)
	}
	if _, err := s.QueueStatus(ctx, "nosale", fans[0]); !errors.Is(err, store.ErrNoSale) {
		t.Errorf("status without sale: %v", err)
	}
	// A failed join takes no number: the next joiner is first.
	e, created, err := s.JoinQueue(ctx, "show", fans[0], saleOpens)
	if err != nil || !created || e.Seq != 1 || e.Position != 1 || e.Section != "General" {
		t.Fatalf("join: %+v created=%v %v", e, created, err)
	}
	if err := s.SetFanClassification(ctx, fans[0], "robot", ""); err == nil {
		t.Error("unknown class accepted")
	}
}

func TestSalesBelongToTheOrganizationOwningTheShow(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	queueCatalog(t, s, "show")
	_, err := s.CreateOrganization(ctx, "other", "Other")
	must(t, err)
	sale := store.Sale{ShowID: "show", Settings: queue.Settings{BatchSize: 50, BatchInterval: 10 * time.Second, Automated: queue.Bar}}
	if _, err := s.PutSale(ctx, "other", sale); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another organization's show: %v", err)
	}
	if _, err := s.OrgSale(ctx, "acme", "show"); !errors.Is(err, store.ErrNoSale) {
		t.Fatalf("no sale yet: %v", err)
	}
	var inv *store.InvalidError
	if _, err := s.PutSale(ctx, "acme", store.Sale{ShowID: "show"}); !errors.As(err, &inv) {
		t.Fatalf("empty settings: %v", err)
	}
	before := time.Now().Add(-time.Second)
	created, err := s.PutSale(ctx, "acme", sale)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := s.OrgSale(ctx, "acme", "show")
	must(t, err)
	// No opening time and no on-sale start: it opens now.
	if st.OpensAt.Before(before) || !st.NextBatchAt.Equal(st.OpensAt) || st.BatchInterval != 10*time.Second ||
		st.BatchSize != 50 || st.Automated != queue.Bar || len(st.Sections) != 0 || st.LastBatchAt != nil {
		t.Errorf("sale %+v", st)
	}
	sale.OpensAt, sale.Sections = saleOpens, queue.Sections{0: "Balcony"}
	created, err = s.PutSale(ctx, "acme", sale)
	if err != nil || created {
		t.Fatalf("replace: %v %v", created, err)
	}
	if st, err = s.OrgSale(ctx, "acme", "show"); err != nil || !st.NextBatchAt.Equal(saleOpens) || st.Sections[0] != "Balcony" {
		t.Errorf("replaced sale %+v %v", st, err)
	}
	if _, err := s.OrgSale(ctx, "other", "show"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organization reads the sale: %v", err)
	}
}

// TestErasedFansLeaveNoHoleInTheQueue erases waiting fans (F3): those behind
// them move up, and batches still admit as many fans as they may.
func TestErasedFansLeaveNoHoleInTheQueue(t *testing.T) {
	s := openSale(t, 2, time.Minute, queue.Relegate)
	ctx := t.Context()
	fans := seedFans(t, s, "u", 6)
	seedOffers(t, s, "show", testOffer{fans[5], 1, "delivered", saleOpens.Add(time.Hour)})
	for _, fan := range fans {
		_, _, err := s.JoinQueue(ctx, "show", fan, saleOpens)
		must(t, err)
	}
	must(t, s.EraseFan(ctx, fans[1], "test"))
	must(t, s.EraseFan(ctx, fans[5], "test")) // the only tier-1 fan
	for i, want := range map[int]int64{0: 1, 2: 2, 3: 3, 4: 4} {
		if e, err := s.QueueStatus(ctx, "show", fans[i]); err != nil || e.Position != want {
			t.Errorf("fan %d: position %d %v, want %d", i, e.Position, err, want)
		}
	}
	n, err := s.AdmitNextBatch(ctx, "show", saleOpens)
	if err != nil || n != 2 {
		t.Fatalf("batch: %d %v", n, err)
	}
	if e, err := s.QueueStatus(ctx, "show", fans[2]); err != nil || !e.Admitted() {
		t.Errorf("fan 2 not admitted in the first batch: %+v %v", e, err)
	}
	if e, err := s.QueueStatus(ctx, "show", fans[4]); err != nil || e.Position != 2 {
		t.Errorf("fan 4: %+v %v", e, err)
	}
	st, err := s.OrgSale(ctx, "acme", "show")
	must(t, err)
	for _, q := range st.Queues {
		if q.Queue == queue.General && (q.Joined != 5 || q.Admitted != 2 || q.Waiting != 2) {
			t.Errorf("general queue %+v", q)
		}
		if q.Queue == 1 && q.Waiting != 0 {
			t.Errorf("tier-1 queue %+v", q)
		}
	}
}
