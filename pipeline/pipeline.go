// Package pipeline turns one partition's decoded events into index, session and
// offer changes. It is the consumer's logic without the consumer: plain Go with
// no Kafka, HTTP or SQL, so it can be driven straight from tests, and a straight
// run over a list of events is the reference a crashed-and-restarted run must equal.
package pipeline

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/sessions"
)

// ReasonUnknownPartner dead-letters events whose source is no registered partner.
const ReasonUnknownPartner events.Reason = "unknown_partner"

// Account is a partner account linked to a fan with consent.
type Account struct {
	Fan uuid.UUID
	// Scope is the signal kinds the consent covers; nil covers all.
	Scope fans.Scope
	// Locale is what rules judge a fan by; nil is UTC with no home. Only
	// threshold crossings read it, so it sits behind a pointer that keeps
	// the per-event lookup small.
	Locale *Locale
	// Home is the record key that places the fan's state: the partner user id
	// of the account the fan was registered with. Events keyed by it land
	// where the state lives; those of the fan's other accounts, at other
	// partners, may land elsewhere and are routed there.
	Home string
}

// Locale is a fan's time zone and home location.
type Locale struct {
	// TimeZone is the fan's zone; nil is UTC.
	TimeZone *time.Location
	// HasHome tells whether HomeLat and HomeLon are known.
	HasHome          bool
	HomeLat, HomeLon float64
}

// Directory answers who an event is about. Implementations keep the answers in
// memory: the event path must not wait on a database per event.
type Directory interface {
	// KnownPartner reports whether id is a registered partner.
	KnownPartner(id string) bool
	// Account returns the linked account; ok is false for accounts not linked with consent.
	Account(partner, userID string) (acct Account, ok bool)
}

// RuleSet returns the active rules, compiled, whose thresholds are in a
// performer's index.
type RuleSet interface {
	ForPerformer(performerID string) []*offers.Program
}

// Scorers returns the scorer built from the current profiles and performers;
// it changes when they do, and the state carries over.
type Scorers interface {
	Scorer() *scoring.Scorer
}

// Config configures a Partition.
type Config struct {
	Directory  Directory
	Rules      RuleSet
	Scorers    Scorers
	SessionGap time.Duration    // default sessions.DefaultGap
	Clock      func() time.Time // stamps issued offers; default time.Now
	NewID      func() uuid.UUID // offer ids; default uuid.New
	// Here reports whether the state of a fan with the given home key lives
	// in this partition. Nil keeps every fan here (a single partition, tests).
	Here func(home string) bool
}

// PairKey names a (fan, performer) pair in durable state.
type PairKey struct {
	Fan       uuid.UUID
	Performer string
}

// State is what a partition's owner loads from durable storage when it takes the partition.
type State struct {
	Pairs    map[PairKey]scoring.PairState
	Fans     map[uuid.UUID]scoring.FanState
	Sessions map[uuid.UUID]sessions.Session
	// Issued is when each offer the partition's fans hold was issued.
	Issued map[offers.Key]time.Time
	// Routed is, per source partition, the offset of the last record routed
	// here from it that was applied: a record routed twice (its sender
	// crashed before checkpointing) is recognized and skipped.
	Routed map[int32]int64
}

// Contribution is what one event added to one pair's index, kept for explanations (F6).
type Contribution struct {
	PairKey
	scoring.Contribution
}

// Conversion is a fan buying tickets for a show (a ticket_purchase event).
type Conversion struct {
	Fan      uuid.UUID
	ShowID   string
	EventID  string
	Quantity int64
	At       time.Time
}

// FanFact is the latest per-fan fact (friend count) for explanations.
type FanFact struct {
	Fan uuid.UUID
	scoring.FanFact
	// Partner, Friends and Interactions are the social graph's ties, by the
	// partner's user ids, for ring detection (F13).
	Partner      string
	Friends      []string
	Interactions []events.Interaction
}

// Classified is a fan's classification from the live signals: the friend
// count and the purchase-derived signals the pipeline keeps.
type Classified struct {
	Fan uuid.UUID
	bots.Classification
	// Evidence is what the classification was computed from, so that the
	// store can add the batch signals (rings, reactions, watch list).
	Evidence bots.Evidence
}

// PairEntry is one pair's state.
type PairEntry struct {
	Key   PairKey
	State scoring.PairState
}

// SessionEntry is a changed session in a Delta.
type SessionEntry struct {
	Fan uuid.UUID
	sessions.Session
	// Pairs is how many of the delta's Pairs first changed before this
	// session did. A listen changes its fan's session, then its pair: when
	// the pair first changed then, it is Pairs[Pairs]. Writing each session
	// just before that pair keeps a fan's changes side by side.
	Pairs int
}

// Delta is what changed since the last Flush: the state to write, the
// contributions to keep and the offers to issue.
type Delta struct {
	Pairs []PairEntry // each pair at most once
	Fans  map[uuid.UUID]scoring.FanState
	// Sessions are the changed sessions in the order they first changed.
	Sessions      []SessionEntry
	Contributions []Contribution
	FanFacts      []FanFact
	Offers        []offers.Offer
	// Decisions are crossings that issued no offer, with the reason; a
	// reason is recorded when it changes, not at every event.
	Decisions []offers.Decision
	// Conversions are ticket purchases, for the funnel's uplift.
	Conversions []Conversion
	// Classified are the fans whose live bot classification (F14) changed,
	// each at most once, with its latest value.
	Classified []Classified
	Routed     map[int32]int64 // changed entries of State.Routed
}

// Empty reports whether the delta changes nothing.
func (d Delta) Empty() bool {
	return len(d.Pairs) == 0 && len(d.Fans) == 0 && len(d.Sessions) == 0 &&
		len(d.Contributions) == 0 && len(d.FanFacts) == 0 && len(d.Offers) == 0 && len(d.Routed) == 0 && len(d.Decisions) == 0 && len(d.Conversions) == 0 && len(d.Classified) == 0
}

// Result is what one event did.
type Result struct {
	// Dropped is set for events about accounts that are not linked with consent,
	// or of a kind the consent does not cover: they are counted and forgotten,
	// never stored. DropReason says which.
	Dropped    bool
	DropReason string
	Fan        uuid.UUID
	Offers     []offers.Offer
	// Route is set when the fan's state lives in another partition: the
	// event changed nothing here and must be routed to where RouteKey lands.
	Route    bool
	RouteKey string
}

// Reasons an event is dropped.
const (
	DropUnlinked   = "unlinked_account"
	DropOutOfScope = "outside_consent_scope"
)

// Partition holds one partition's state. It is not safe for concurrent use.
type Partition struct {
	cfg      Config
	interner scoring.Interner
	pairs    pairTable
	fans     map[uuid.UUID]*scoring.FanState
	sessions *sessions.Tracker
	issued   map[offers.Key]time.Time
	reasons  map[offers.Key]offers.Reason // the last reason recorded for a crossing without offer
	routed   map[int32]int64

	dirtyRouted map[int32]struct{}
	dirtyFans   map[uuid.UUID]struct{}
	contribs    []Contribution
	facts       []FanFact
	pending     []offers.Offer
	decisions   []offers.Decision
	conversions []Conversion
	// classes is the last live class reported per fan; classified the fans
	// whose class changed since the last Flush. Not durable: after a load
	// the first change is reported again, which the store takes as an upsert.
	classes    map[uuid.UUID]bots.Class
	classified map[uuid.UUID]Classified
	targets    []scoring.Target
	// refs caches, by Target.Slot of refScorer's performers, 1 + the
	// performer's ref: the interner's map lookup then happens once per
	// performer rather than once per event.
	refs      []scoring.PerformerRef
	refScorer *scoring.Scorer
	scratch   []scoring.Contribution
}

// New returns an empty partition.
func New(cfg Config) (*Partition, error) {
	var errs []error
	if cfg.Directory == nil {
		errs = append(errs, errors.New("pipeline: Directory is required"))
	}
	if cfg.Rules == nil {
		errs = append(errs, errors.New("pipeline: Rules is required"))
	}
	if cfg.Scorers == nil {
		errs = append(errs, errors.New("pipeline: Scorers is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.SessionGap = cmp.Or(cfg.SessionGap, sessions.DefaultGap)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = uuid.New
	}
	return &Partition{
		cfg:         cfg,
		pairs:       newPairTable(),
		fans:        make(map[uuid.UUID]*scoring.FanState),
		sessions:    sessions.NewTracker(cfg.SessionGap),
		issued:      make(map[offers.Key]time.Time),
		reasons:     make(map[offers.Key]offers.Reason),
		routed:      make(map[int32]int64),
		dirtyRouted: make(map[int32]struct{}),
		dirtyFans:   make(map[uuid.UUID]struct{}),
		classes:     make(map[uuid.UUID]bots.Class),
		classified:  make(map[uuid.UUID]Classified),
	}, nil
}

// Load adds durable state; call it on a fresh Partition.
func (p *Partition) Load(s State) {
	for k, st := range s.Pairs {
		p.pairs.add(scoring.PairKey{Fan: k.Fan, Performer: p.interner.Intern(k.Performer)}, st)
	}
	for f, fs := range s.Fans {
		v := fs
		p.fans[f] = &v
	}
	for f, ss := range s.Sessions {
		p.sessions.Load(f, ss)
	}
	maps.Copy(p.issued, s.Issued)
	maps.Copy(p.routed, s.Routed)
}

// FirstRouting reports whether the record at offset of source partition src,
// routed here, has not been applied yet, and remembers it as applied. A source
// routes its records to a partition in offset order and, after a crash,
// repeats a suffix of them, so one offset per source is all it takes.
func (p *Partition) FirstRouting(src int32, offset int64) bool {
	if last, ok := p.routed[src]; ok && offset <= last {
		return false
	}
	p.routed[src] = offset
	p.dirtyRouted[src] = struct{}{}
	return true
}

// Apply applies one decoded event read from this partition's own records. It
// returns an *events.Rejection for events that must be dead-lettered, and a
// Result with Route set for events of fans whose state lives elsewhere.
func (p *Partition) Apply(ev events.Event) (Result, error) {
	return p.apply(ev, false)
}

// ApplyRouted applies an event another partition routed here. It does not ask
// where the fan lives: the sender did, and asking again could bounce it on.
func (p *Partition) ApplyRouted(ev events.Event) (Result, error) {
	return p.apply(ev, true)
}

func (p *Partition) apply(ev events.Event, routed bool) (Result, error) {
	if !p.cfg.Directory.KnownPartner(ev.Source) {
		return Result{}, &events.Rejection{Reason: ReasonUnknownPartner, Detail: "source " + ev.Source + " is not a registered partner"}
	}
	acct, ok := p.cfg.Directory.Account(ev.Source, ev.Subject)
	if !ok {
		return Result{Dropped: true, DropReason: DropUnlinked}, nil
	}
	fan := acct.Fan
	if !acct.Scope.Allows(ev.Type) {
		return Result{Dropped: true, DropReason: DropOutOfScope, Fan: fan}, nil
	}
	if !routed && p.cfg.Here != nil && !p.cfg.Here(acct.Home) {
		return Result{Fan: fan, Route: true, RouteKey: acct.Home}, nil
	}
	res := Result{Fan: fan}
	scorer := p.cfg.Scorers.Scorer()
	if ev.SocialGraph != nil {
		fs := p.fans[fan]
		if fs == nil {
			fs = &scoring.FanState{}
			p.fans[fan] = fs
		}
		if fact, changed := fs.Apply(ev); changed {
			p.dirtyFans[fan] = struct{}{}
			p.facts = append(p.facts, FanFact{Fan: fan, FanFact: fact, Partner: ev.Source,
				Friends: ev.SocialGraph.FriendIDs, Interactions: ev.SocialGraph.Interactions})
			p.reclassify(fan, fs, p.thresholds(scorer, ""))
		}
		// The human point reaches each pair's index at the pair's next event.
		return res, nil
	}
	if tp := ev.TicketPurchase; tp != nil {
		if rej := p.observePurchase(fan, ev, scorer); rej != nil {
			return Result{}, rej
		}
		p.conversions = append(p.conversions, Conversion{Fan: fan, ShowID: tp.Event, EventID: ev.Source + "/" + ev.ID,
			Quantity: tp.Quantity, At: ev.Time})
	}
	// Only a crossing reads the session, so an event that is not a listen
	// looks it up only when it reaches a rule: most never do.
	var sess sessions.Session
	var live bool
	if ev.Listen != nil {
		sess, _ = p.sessions.Listen(fan, ev.Time)
		live = p.sessions.LiveAt(sess, ev.Time)
	}
	var crossing *offers.Crossing // built for the first pair with rules, shared by the rest
	p.targets = scorer.AppendTargets(p.targets[:0], ev)
	for _, tg := range p.targets {
		perf := tg.ID()
		k := scoring.PairKey{Fan: fan, Performer: p.ref(scorer, tg)}
		slot, found := p.pairs.lookup(k)
		var st scoring.PairState
		if found {
			st = *p.pairs.at(slot)
		}
		before := st
		var delta float64
		delta, p.scratch = scorer.ApplyTarget(p.scratch[:0], &st, ev, tg)
		for _, c := range p.scratch {
			p.contribs = append(p.contribs, Contribution{PairKey: PairKey{Fan: fan, Performer: perf}, Contribution: c})
		}
		if st == before && delta == 0 {
			continue // an event that changed nothing leaves no state behind
		}
		if found {
			*p.pairs.at(slot) = st
		} else {
			slot = p.pairs.add(k, st)
		}
		p.pairs.markDirty(slot, uint32(p.sessions.Listed()))
		rules := p.cfg.Rules.ForPerformer(perf)
		if len(rules) == 0 {
			continue
		}
		index := scorer.Index(&st, p.fans[fan], perf, ev.Time)
		if !slices.ContainsFunc(rules, func(r *offers.Program) bool { return r.Reaches(index) }) {
			continue
		}
		if crossing == nil {
			if ev.Listen == nil {
				sess, live = p.sessions.Status(fan, ev.Time)
			}
			crossing = p.crossing(ev, acct, sess, live)
		}
		crossing.Index = index
		for _, r := range rules {
			issued, decided := r.Evaluate(crossing, p.issuedAt, p.cfg.NewID)
			for _, o := range issued {
				p.issued[o.Key()] = o.IssuedAt
				delete(p.reasons, o.Key())
				p.pending = append(p.pending, o)
				res.Offers = append(res.Offers, o)
			}
			for _, d := range decided {
				if p.reasons[d.Key] != d.Reason {
					p.reasons[d.Key] = d.Reason
					p.decisions = append(p.decisions, d)
					if d.Reason == offers.ReasonTooGood {
						p.observeTooGood(fan, scorer, perf)
					}
				}
			}
		}
	}
	return res, nil
}

// ref returns the interned ref of the target's performer.
func (p *Partition) ref(scorer *scoring.Scorer, tg scoring.Target) scoring.PerformerRef {
	if scorer != p.refScorer {
		p.refScorer = scorer
		p.refs = slices.Grow(p.refs[:0], scorer.Performers())[:scorer.Performers()]
		clear(p.refs)
	}
	if r := p.refs[tg.Slot()]; r != 0 {
		return r - 1
	}
	r := p.interner.Intern(tg.ID())
	p.refs[tg.Slot()] = r + 1
	return r
}

// crossing describes the fan and the moment to the rules; the index is filled per pair.
func (p *Partition) crossing(ev events.Event, acct Account, sess sessions.Session, live bool) *offers.Crossing {
	c := &offers.Crossing{
		Fan:         offers.Fan{ID: acct.Fan, FriendCount: -1},
		SessionLive: live,
		EventID:     ev.Source + "/" + ev.ID,
		EventType:   string(ev.Type),
		EventTime:   ev.Time,
		Now:         ev.Time,
		IssueAt:     p.cfg.Clock(), // only stamps offers: read it only where rules apply
	}
	if l := acct.Locale; l != nil {
		c.Fan.TimeZone, c.Fan.HasHome, c.Fan.HomeLat, c.Fan.HomeLon = l.TimeZone, l.HasHome, l.HomeLat, l.HomeLon
	}
	if fs := p.fans[acct.Fan]; fs != nil {
		if n, ok := fs.FriendCount(); ok {
			c.Fan.FriendCount = n
		}
	}
	if p.classes[acct.Fan] == bots.Automated {
		c.Fan.Automated = true
		if cl, ok := p.classified[acct.Fan]; ok {
			c.Fan.AutomatedWhy = reasonsText(cl.Reasons)
		}
	}
	if live {
		c.SessionStart = sess.Start
	}
	return c
}

// fanState returns the fan's per-fan state, creating it.
func (p *Partition) fanState(fan uuid.UUID) *scoring.FanState {
	fs := p.fans[fan]
	if fs == nil {
		fs = &scoring.FanState{}
		p.fans[fan] = fs
	}
	return fs
}

// observePurchase folds a ticket purchase into the fan's bot signals (F13),
// under the thresholds of the performer's profile. A purchase the signals
// refuse (a duplicate, a venue off the Earth, an impossible time) is
// dead-lettered before it changes anything.
func (p *Partition) observePurchase(fan uuid.UUID, ev events.Event, scorer *scoring.Scorer) *events.Rejection {
	tp := ev.TicketPurchase
	th := p.thresholds(scorer, tp.Performer)
	fs := p.fanState(fan)
	err := fs.Bots.ObservePurchase(ev.Source+"/"+ev.ID, ev.Time, tp.Venue.Lat, tp.Venue.Lon, p.cfg.Clock(), th)
	var rej *bots.Rejected
	if errors.As(err, &rej) {
		return &events.Rejection{Reason: events.Reason(rej.Code), Detail: rej.Detail}
	}
	p.dirtyFans[fan] = struct{}{}
	p.reclassify(fan, fs, th)
	return nil
}

func (p *Partition) observeTooGood(fan uuid.UUID, scorer *scoring.Scorer, perf string) {
	fs := p.fanState(fan)
	fs.Bots.ObserveTooGood()
	p.dirtyFans[fan] = struct{}{}
	p.reclassify(fan, fs, p.thresholds(scorer, perf))
}

func (p *Partition) thresholds(scorer *scoring.Scorer, perf string) bots.Thresholds {
	prof, ok := scorer.Profile(perf)
	if !ok {
		prof = scoring.DefaultProfile()
	}
	return prof.BotThresholds()
}

// reclassify classifies the fan on the live signals and notes a change.
func (p *Partition) reclassify(fan uuid.UUID, fs *scoring.FanState, th bots.Thresholds) {
	e := bots.Evidence{Live: fs.Bots.Summary()}
	e.FriendCount, e.FriendsKnown = fs.FriendCount()
	c := bots.Classify(e, th)
	if prev, ok := p.classes[fan]; ok && prev == c.Class {
		if _, pending := p.classified[fan]; !pending {
			return
		}
	}
	p.classes[fan] = c.Class
	p.classified[fan] = Classified{Fan: fan, Classification: c, Evidence: e}
}

func reasonsText(rs []bots.Reason) string {
	var b []byte
	for i, r := range rs {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = append(b, r.Evidence...)
	}
	return string(b)
}

func (p *Partition) issuedAt(k offers.Key) (time.Time, bool) {
	at, ok := p.issued[k]
	return at, ok
}

// Flush returns the changes since the last Flush and starts a new delta.
func (p *Partition) Flush() Delta {
	d := Delta{
		Pairs:         make([]PairEntry, 0, len(p.pairs.dirty)),
		Fans:          make(map[uuid.UUID]scoring.FanState, len(p.dirtyFans)),
		Contributions: p.contribs,
		FanFacts:      p.facts,
		Offers:        p.pending,
		Decisions:     p.decisions,
		Conversions:   p.conversions,
	}
	for _, c := range p.classified {
		d.Classified = append(d.Classified, c)
	}
	clear(p.classified)
	if len(p.dirtyRouted) > 0 {
		d.Routed = make(map[int32]int64, len(p.dirtyRouted))
		for src := range p.dirtyRouted {
			d.Routed[src] = p.routed[src]
		}
		clear(p.dirtyRouted)
	}
	// A pair's mark is how many sessions were listed before it was, and
	// marks only grow along the list: a session precedes the pairs whose
	// mark is above its Seq.
	changes := p.sessions.TakeDirty()
	if len(changes) > 0 {
		d.Sessions = make([]SessionEntry, len(changes))
	}
	next := 0 // the first session not yet placed
	// place places the sessions listed before the upTo-th, before the next pair.
	place := func(upTo int) {
		for ; next < len(changes) && changes[next].Seq < upTo; next++ {
			d.Sessions[next] = SessionEntry{Fan: changes[next].Fan, Session: changes[next].Session, Pairs: len(d.Pairs)}
		}
	}
	p.pairs.takeDirty(func(k scoring.PairKey, st *scoring.PairState, mark uint32) {
		place(int(mark))
		d.Pairs = append(d.Pairs, PairEntry{Key: PairKey{Fan: k.Fan, Performer: p.interner.ID(k.Performer)}, State: *st})
	})
	place(math.MaxInt)
	for f := range p.dirtyFans {
		d.Fans[f] = *p.fans[f]
	}
	clear(p.dirtyFans)
	p.contribs, p.facts, p.pending, p.decisions, p.conversions = nil, nil, nil, nil, nil
	return d
}

// Forget drops everything the partition holds about the given fans (erasure, F3).
// It returns how many entries it dropped.
func (p *Partition) Forget(erased map[uuid.UUID]struct{}) int {
	if len(erased) == 0 {
		return 0
	}
	n := p.sessions.Forget(erased)
	n += p.pairs.forget(func(k scoring.PairKey) bool {
		_, gone := erased[k.Fan]
		return gone
	})
	for f := range erased {
		delete(p.classes, f)
		delete(p.classified, f)
		if _, ok := p.fans[f]; ok {
			delete(p.fans, f)
			delete(p.dirtyFans, f)
			n++
		}
	}
	for k := range p.issued {
		if _, gone := erased[k.Fan]; gone {
			delete(p.issued, k)
		}
	}
	for k := range p.reasons {
		if _, gone := erased[k.Fan]; gone {
			delete(p.reasons, k)
		}
	}
	kept := p.decisions[:0]
	for _, d := range p.decisions {
		if _, gone := erased[d.Fan]; !gone {
			kept = append(kept, d)
		}
	}
	p.decisions = kept
	conv := p.conversions[:0]
	for _, c := range p.conversions {
		if _, gone := erased[c.Fan]; !gone {
			conv = append(conv, c)
		}
	}
	p.conversions = conv
	return n
}

// State returns a copy of the partition's whole state, for snapshots and comparisons.
func (p *Partition) State() State {
	s := State{
		Pairs:    make(map[PairKey]scoring.PairState, p.pairs.len()),
		Fans:     make(map[uuid.UUID]scoring.FanState, len(p.fans)),
		Sessions: p.sessions.Snapshot(),
		Routed:   maps.Clone(p.routed),
	}
	p.pairs.all(func(k scoring.PairKey, st *scoring.PairState) {
		s.Pairs[PairKey{Fan: k.Fan, Performer: p.interner.ID(k.Performer)}] = *st
	})
	for f, fs := range p.fans {
		s.Fans[f] = *fs
	}
	return s
}

// Recompute folds decay up to at into every pair's stored score (F5's scheduled
// recomputation): values read the same, but a snapshot taken after it holds
// current numbers instead of old ones with long decay still to apply.
func (p *Partition) Recompute(at time.Time) int {
	scorer := p.cfg.Scorers.Scorer()
	n := 0
	p.pairs.all(func(k scoring.PairKey, st *scoring.PairState) {
		if prof, ok := scorer.Profile(p.interner.ID(k.Performer)); ok {
			st.Recompute(prof, at)
			n++
		}
	})
	return n
}

// Index returns the pair's index at time at.
func (p *Partition) Index(fan uuid.UUID, performer string, at time.Time) float64 {
	ref, ok := p.interner.Lookup(performer)
	if !ok {
		return 0
	}
	st := p.pairs.get(scoring.PairKey{Fan: fan, Performer: ref})
	if st == nil {
		return 0
	}
	return p.cfg.Scorers.Scorer().Index(st, p.fans[fan], performer, at)
}
