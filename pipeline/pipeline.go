// Package pipeline turns one partition's decoded events into index, session and
// offer changes. It is the consumer's logic without the consumer: plain Go with
// no Kafka, HTTP or SQL, so it can be driven straight from tests, and a straight
// run over a list of events is the reference a crashed-and-restarted run must equal.
package pipeline

import (
	"cmp"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/fans"
	"github.com/crescendo-hq/crescendo/index"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/sessions"
)

// ReasonUnknownPartner dead-letters events whose source is no registered partner.
const ReasonUnknownPartner events.Reason = "unknown_partner"

// Directory answers who an event is about. Implementations keep the answers in
// memory: the event path must not wait on a database per event.
type Directory interface {
	// KnownPartner reports whether id is a registered partner.
	KnownPartner(id string) bool
	// Account returns the fan a partner account is linked to and the signal
	// kinds its consent covers; ok is false for accounts not linked with consent.
	Account(partner, userID string) (fan uuid.UUID, scope fans.Scope, ok bool)
}

// RuleSet returns the active rules that score a performer.
type RuleSet interface {
	ForPerformer(performerID string) []offers.Rule
}

// Config configures a Partition.
type Config struct {
	Directory  Directory
	Rules      RuleSet
	SessionGap time.Duration    // default sessions.DefaultGap
	Clock      func() time.Time // stamps issued offers; default time.Now
	NewID      func() uuid.UUID // offer ids; default uuid.New
}

// State is what a partition's owner loads from durable storage when it takes the partition.
type State struct {
	Listening map[index.Key]index.Counter
	Sessions  map[uuid.UUID]sessions.Session
	Issued    []offers.Key
}

// Delta is what changed since the last Flush: the state to write and the offers to issue.
type Delta struct {
	Listening map[index.Key]index.Counter
	Sessions  map[uuid.UUID]sessions.Session
	Offers    []offers.Offer
}

// Empty reports whether the delta changes nothing.
func (d Delta) Empty() bool {
	return len(d.Listening) == 0 && len(d.Sessions) == 0 && len(d.Offers) == 0
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
}

// Reasons an event is dropped.
const (
	DropUnlinked   = "unlinked_account"
	DropOutOfScope = "outside_consent_scope"
)

// Partition holds one partition's state. It is not safe for concurrent use.
type Partition struct {
	cfg       Config
	listening *index.Table
	sessions  *sessions.Tracker
	issued    map[offers.Key]struct{}
	pending   []offers.Offer
}

// New returns an empty partition.
func New(cfg Config) (*Partition, error) {
	if cfg.Directory == nil {
		return nil, errors.New("pipeline: Directory is required")
	}
	if cfg.Rules == nil {
		return nil, errors.New("pipeline: Rules is required")
	}
	cfg.SessionGap = cmp.Or(cfg.SessionGap, sessions.DefaultGap)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = uuid.New
	}
	return &Partition{
		cfg:       cfg,
		listening: index.NewTable(),
		sessions:  sessions.NewTracker(cfg.SessionGap),
		issued:    make(map[offers.Key]struct{}),
	}, nil
}

// Load replaces nothing and adds the given durable state; call it on a fresh Partition.
func (p *Partition) Load(s State) {
	for k, c := range s.Listening {
		p.listening.Load(k, c)
	}
	for f, ss := range s.Sessions {
		p.sessions.Load(f, ss)
	}
	for _, k := range s.Issued {
		p.issued[k] = struct{}{}
	}
}

// Apply applies one decoded event. It returns an *events.Rejection for events
// that must be dead-lettered.
func (p *Partition) Apply(ev events.Event) (Result, error) {
	if !p.cfg.Directory.KnownPartner(ev.Source) {
		return Result{}, &events.Rejection{Reason: ReasonUnknownPartner, Detail: "source " + ev.Source + " is not a registered partner"}
	}
	fan, scope, ok := p.cfg.Directory.Account(ev.Source, ev.Subject)
	if !ok {
		return Result{Dropped: true, DropReason: DropUnlinked}, nil
	}
	if !scope.Allows(ev.Type) {
		return Result{Dropped: true, DropReason: DropOutOfScope, Fan: fan}, nil
	}
	res := Result{Fan: fan}
	if ev.Listen == nil {
		// Other signals feed the full index (F4), which is not built yet.
		return res, nil
	}
	p.sessions.Listen(fan, ev.Time)
	live := p.sessions.Live(fan, ev.Time)
	played := time.Duration(ev.Listen.MsPlayed) * time.Millisecond
	k := index.Key{Fan: fan, Performer: ev.Listen.Performer}
	rules := p.cfg.Rules.ForPerformer(ev.Listen.Performer)
	p.listening.AddListen(k, ev.Time, played, ev.Time, index.WindowDays)
	now := p.cfg.Clock()
	for _, r := range rules {
		c := offers.Crossing{
			Fan:         fan,
			Index:       p.listening.Minutes(k, ev.Time, r.WindowDays),
			SessionLive: live,
			EventID:     ev.Source + "/" + ev.ID,
			Now:         now,
		}
		for _, o := range offers.Evaluate(r, c, p.isIssued, p.cfg.NewID) {
			p.issued[o.Key()] = struct{}{}
			p.pending = append(p.pending, o)
			res.Offers = append(res.Offers, o)
		}
	}
	return res, nil
}

func (p *Partition) isIssued(k offers.Key) bool {
	_, ok := p.issued[k]
	return ok
}

// Flush returns the changes since the last Flush and starts a new delta.
func (p *Partition) Flush() Delta {
	d := Delta{
		Listening: p.listening.TakeDirty(),
		Sessions:  p.sessions.TakeDirty(),
		Offers:    p.pending,
	}
	p.pending = nil
	return d
}

// Forget drops everything the partition holds about the given fans (erasure, F3).
// It returns how many fans it held state for.
func (p *Partition) Forget(erased map[uuid.UUID]struct{}) int {
	if len(erased) == 0 {
		return 0
	}
	n := p.listening.Forget(erased)
	n += p.sessions.Forget(erased)
	for k := range p.issued {
		if _, gone := erased[k.Fan]; gone {
			delete(p.issued, k)
		}
	}
	return n
}

// State returns a copy of the partition's whole state, for snapshots.
func (p *Partition) State() State {
	return State{Listening: p.listening.Snapshot(), Sessions: p.sessions.Snapshot()}
}

// Minutes returns the listening minutes of a pair over days ending at now.
func (p *Partition) Minutes(k index.Key, now time.Time, days int) float64 {
	return p.listening.Minutes(k, now, days)
}

// Listening returns a copy of every listening counter.
func (p *Partition) Listening() map[index.Key]index.Counter { return p.listening.Snapshot() }
