package scoring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/crescendo-hq/crescendo/events"
)

// Config is what a Scorer scores with.
type Config struct {
	// Profiles are the scoring profiles performers refer to by ID. A profile
	// with ID "default" replaces DefaultProfile for performers naming none.
	Profiles []Profile
	// Performers are the performers whose index is kept; events about
	// anyone else score nothing.
	Performers []Performer
}

// compiledProfile is a profile with its vocabulary compiled and its
// durations in the units the state uses.
type compiledProfile struct {
	Profile
	lex           *lexicon
	thresholdSecs float64
	periodSecs    uint32
}

type performerEntry struct {
	Performer
	idx  int32
	prof *compiledProfile
	// recentFrom and recentTo bound the times whose affinity statements
	// earn the extra point; recentTo is zero when none does.
	recentFrom, recentTo time.Time
}

// Scorer turns events into index points. It holds compiled profiles and
// performers and no per-fan state, so one Scorer serves every partition:
// it is safe for concurrent use. Rebuild it when profiles or performers
// change; states carry over.
type Scorer struct {
	perfs     []*performerEntry
	byID      map[string]*performerEntry
	byCharity map[string][]*performerEntry
	text      *textAnalyzer
}

// NewScorer validates cfg and compiles it. It reports every problem at
// once, each with its path ("profiles[1].stream_cap: ...").
func NewScorer(cfg Config) (*Scorer, error) {
	var errs []error
	profiles := map[string]*compiledProfile{}
	seenProfile := map[string]bool{}
	for i, p := range cfg.Profiles {
		if seenProfile[p.ID] {
			errs = append(errs, fmt.Errorf("profiles[%d].id: %q is used twice", i, p.ID))
			continue
		}
		seenProfile[p.ID] = true
		if err := p.Validate(); err != nil {
			errs = append(errs, prefixed(fmt.Sprintf("profiles[%d].", i), err)...)
			continue
		}
		profiles[p.ID] = compileProfile(p)
	}
	def := DefaultProfile()
	if _, ok := profiles[def.ID]; !ok {
		profiles[def.ID] = compileProfile(def)
	}

	s := &Scorer{byID: map[string]*performerEntry{}, byCharity: map[string][]*performerEntry{}}
	var valid []Performer
	seen := map[string]struct{}{}
	for i, p := range cfg.Performers {
		path := fmt.Sprintf("performers[%d].", i)
		if err := p.Validate(); err != nil {
			errs = append(errs, prefixed(path, err)...)
			continue
		}
		if _, dup := seen[p.ID]; dup {
			errs = append(errs, fmt.Errorf("%sid: %q is used twice", path, p.ID))
			continue
		}
		seen[p.ID] = struct{}{}
		pid := p.ProfileID
		if pid == "" {
			pid = def.ID
		}
		prof, ok := profiles[pid]
		if !ok {
			errs = append(errs, fmt.Errorf("%sprofile_id: no profile %q", path, p.ProfileID))
			continue
		}
		e := &performerEntry{Performer: p, idx: int32(len(s.perfs)), prof: prof}
		if !p.ShowDate.IsZero() && prof.RecentMonths > 0 {
			e.recentFrom, e.recentTo = p.ShowDate.AddDate(0, -prof.RecentMonths, 0), p.ShowDate
		}
		s.perfs = append(s.perfs, e)
		s.byID[p.ID] = e
		for _, c := range p.Charities {
			s.byCharity[c] = append(s.byCharity[c], e)
		}
		valid = append(valid, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	names, symbols := catalogNames(valid)
	for _, p := range profiles {
		symbols = append(symbols, p.lex.symbols...)
	}
	s.text = newTextAnalyzer(names, symbols)
	return s, nil
}

func compileProfile(p Profile) *compiledProfile {
	return &compiledProfile{
		Profile:       p,
		lex:           compileLexicon(p),
		thresholdSecs: p.StreamThresholdMinutes * 60,
		periodSecs:    uint32(p.StreamPeriod / time.Second),
	}
}

// prefixed splits a joined validation error into its problems, each under prefix.
func prefixed(prefix string, err error) []error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}

// Profile returns the profile performer id is scored with.
func (s *Scorer) Profile(performerID string) (Profile, bool) {
	if e := s.byID[performerID]; e != nil {
		return e.prof.Profile, true
	}
	return Profile{}, false
}

// Performer returns what the Scorer knows about performer id.
func (s *Scorer) Performer(id string) (Performer, bool) {
	if e := s.byID[id]; e != nil {
		return e.Performer, true
	}
	return Performer{}, false
}

// Targets appends to dst the ids of the performers whose index ev can
// change, and returns the extended slice. The caller applies ev to each of
// those pairs; events concerning no one need no pair state at all.
//
//   - listen, page_view, photo_tag, follow, merch_purchase and attendance
//     concern the performer they carry;
//   - social_post concerns every performer whose name or alias it mentions,
//     unless a reward campaign or promotion prompted it;
//   - donation concerns every performer who lists the charity;
//   - ticket_purchase and social_graph concern none: ticket purchases feed
//     bot detection (F13), not affinity, and the friend count is per fan
//     (FanState.Apply).
//
// Free merchandise and zero donations concern none either: they cost the
// fan nothing, so they say nothing about devotion and would be easy to farm.
func (s *Scorer) Targets(dst []string, ev events.Event) []string {
	var buf [4]Target
	for _, t := range s.AppendTargets(buf[:0], ev) {
		dst = append(dst, t.ID())
	}
	return dst
}

// Target is a performer an event concerns, as Targets and AppendTargets
// find it: it carries what scoring the pair needs, so the hot path looks
// the performer up once per event rather than once per step. A Target is
// only good for the Scorer that returned it.
type Target struct{ e *performerEntry }

// ID returns the performer's id.
func (t Target) ID() string { return t.e.ID }

// Slot returns the performer's place in its Scorer, from 0 to
// Scorer.Performers()-1, for callers that keep something per performer in
// a slice rather than a map.
func (t Target) Slot() int { return int(t.e.idx) }

// Performers returns how many performers the Scorer knows.
func (s *Scorer) Performers() int { return len(s.perfs) }

// AppendTargets is Targets for the hot path: it appends Targets, each once.
func (s *Scorer) AppendTargets(dst []Target, ev events.Event) []Target {
	switch {
	case ev.SocialPost != nil:
		if promoted(ev.SocialPost) {
			return dst
		}
		sc := s.text.pool.Get().(*scratch)
		s.text.findNames(sc, ev.SocialPost.Text)
		for _, h := range sc.names {
			for _, i := range h.ph.perfs {
				if t := (Target{s.perfs[i]}); !slices.Contains(dst, t) {
					dst = append(dst, t)
				}
			}
		}
		s.text.pool.Put(sc)
		return dst
	case ev.Donation != nil:
		if ev.Donation.Amount <= 0 {
			return dst
		}
		for _, e := range s.byCharity[ev.Donation.Charity] {
			dst = append(dst, Target{e})
		}
		return dst
	case ev.TicketPurchase != nil, ev.SocialGraph != nil:
		return dst
	case ev.MerchPurchase != nil && ev.MerchPurchase.Amount <= 0:
		return dst
	}
	if e := s.byID[ev.Performer()]; e != nil {
		dst = append(dst, Target{e})
	}
	return dst
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func promoted(p *events.SocialPost) bool {
	return p.RewardCampaign != "" || p.InReplyToPromo != ""
}

// Mentioned returns the ids of the performers text names, each once, in
// order of first mention.
func (s *Scorer) Mentioned(text string) []string {
	sc := s.text.pool.Get().(*scratch)
	defer s.text.pool.Put(sc)
	s.text.findNames(sc, text)
	var ids []string
	for _, i := range mentionedIn(sc, nil) {
		ids = append(ids, s.perfs[i].ID)
	}
	return ids
}

// Analyze reads text for affinity statements about performer id under its
// profile. Statements are attributed to the nearest name of any performer
// the Scorer knows.
func (s *Scorer) Analyze(text, performerID string) Match {
	e := s.byID[performerID]
	if e == nil {
		return Match{}
	}
	return s.text.analyze(text, e.prof.lex, e.idx)
}

// Index returns the index of a pair at time at: its decayed points plus the
// fan's human point. fan may be nil when no graph was seen.
func (s *Scorer) Index(st *PairState, fan *FanState, performerID string, at time.Time) float64 {
	e := s.byID[performerID]
	if e == nil {
		return 0
	}
	return st.Value(e.prof.Profile, at) + HumanPoints(e.prof.Profile, fan)
}

// Apply applies event ev to the state of the pair (ev's fan, performerID)
// and returns how much the pair's value rose and, appended to dst, what each
// signal contributed, for the caller to store for explanations (F6).
//
// Time is the event's own: decay runs up to ev.Time, never to a wall clock,
// so replaying events gives the same states. An event older than the
// state's last update (it arrived late) adds its points decayed from its
// own time, exactly as if it had come in order, with two exceptions kept for
// compactness: listening in a streaming period that has already closed is
// not counted, and a late post's diminishing-returns share is judged against
// the posts seen so far rather than those before it.
//
// Apply ignores events that do not concern performerID (see Targets).
func (s *Scorer) Apply(dst []Contribution, st *PairState, ev events.Event, performerID string) (float64, []Contribution) {
	e := s.byID[performerID]
	if e == nil {
		return 0, dst
	}
	return s.apply(dst, st, ev, e)
}

// ApplyTarget is Apply for a Target that this Scorer's AppendTargets
// returned for ev.
func (s *Scorer) ApplyTarget(dst []Contribution, st *PairState, ev events.Event, t Target) (float64, []Contribution) {
	return s.apply(dst, st, ev, t.e)
}

func (s *Scorer) apply(dst []Contribution, st *PairState, ev events.Event, e *performerEntry) (float64, []Contribution) {
	performerID := e.ID
	if id := ev.Performer(); id != "" && id != performerID {
		return 0, dst
	}
	p := e.prof
	var m Match
	switch {
	case ev.SocialPost != nil:
		if promoted(ev.SocialPost) {
			return 0, dst
		}
		if m = s.text.analyze(ev.SocialPost.Text, p.lex, e.idx); !m.Mentioned || m.Negated {
			return 0, dst
		}
	case ev.TicketPurchase != nil, ev.SocialGraph != nil:
		// Events that concern no pair leave the state alone, so that
		// a caller can trust an unchanged state needs no write.
		return 0, dst
	}
	t := stamp(ev.Time)
	st.advance(p.HalfLife, t)
	// Points of a late event are worth less by now; an in-order event's
	// factor is 1.
	lateness := decay(p.HalfLife, t, st.ref)
	n := len(dst)
	w := p.Weights

	switch {
	case ev.Listen != nil:
		dst = s.listen(dst, st, p, ev, t)
	case ev.SocialPost != nil:
		dst = s.post(dst, st, e, m, ev, lateness)
	case ev.PageView != nil:
		// A visit is a day's browsing, not every page loaded: one point per
		// pair per UTC day keeps page reloads from inflating the index.
		if day := uint16(t/86400 + 1); day > st.visitDay {
			st.visitDay = day
			dst = contribute(dst, SignalPageView, w.PageView, ev, "first visit on "+unstamp(t).Format(time.DateOnly))
		}
	case ev.PhotoTag != nil:
		dst = contribute(dst, SignalPhotoTag, w.PhotoTag, ev, "")
	case ev.Follow != nil:
		// Following is a state, not a stream: a fan who unfollows and
		// follows again has not become more of a fan.
		if st.flags&flagFollowed == 0 {
			st.flags |= flagFollowed
			dst = contribute(dst, SignalFollow, w.Follow, ev, "")
		}
	case ev.MerchPurchase != nil:
		// One point per purchase, not per amount: amounts come in
		// different currencies without rates, and the patent counts
		// findings, not spend.
		if ev.MerchPurchase.Amount > 0 {
			dst = contribute(dst, SignalMerch, w.Merch, ev, ev.MerchPurchase.Item)
		}
	case ev.Donation != nil:
		if ev.Donation.Amount > 0 && containsString(e.Charities, ev.Donation.Charity) {
			dst = contribute(dst, SignalDonation, w.Donation, ev, ev.Donation.Charity)
		}
	case ev.Attendance != nil:
		// A show counts once even when several gates scan the ticket.
		h := showHash(ev.Attendance.Event)
		if h != st.show {
			st.show = h
			dst = contribute(dst, SignalAttendance, w.Attendance, ev, ev.Attendance.Event+" verified by "+ev.Attendance.VerifiedBy)
		}
	}

	var delta float64
	for _, c := range dst[n:] {
		delta += c.Points * lateness
	}
	st.score = float32(float64(st.score) + delta)
	return delta, dst
}

// listen counts listening time in fixed periods aligned to Epoch and gives
// the streaming points the period has newly earned.
func (s *Scorer) listen(dst []Contribution, st *PairState, p *compiledProfile, ev events.Event, t uint32) []Contribution {
	period := p.periodSecs
	switch {
	case st.flags&flagStreaming == 0 || uint64(t) >= uint64(st.period)+uint64(period):
		st.period = t - t%period
		st.listened, st.streamed = 0, 0
		st.flags |= flagStreaming
	case t < st.period:
		return dst // the period it belongs to is closed and forgotten
	}
	played := uint64((max(ev.Listen.MsPlayed, 0) + 500) / 1000) // decoding bounds it; a hand-built event may not
	st.listened = uint32(min(uint64(st.listened)+played, math.MaxUint32))

	var earned uint8
	reached := float64(st.listened) / p.thresholdSecs
	switch p.StreamMode {
	case StreamCount:
		earned = uint8(min(math.Floor(reached), float64(p.StreamCap)))
	default:
		if reached >= 1 {
			earned = 1
		}
	}
	if earned <= st.streamed {
		return dst
	}
	k := earned - st.streamed
	st.streamed = earned
	detail := strconv.FormatFloat(float64(st.listened)/60, 'f', 1, 64) + " min in the period from " +
		unstamp(st.period).Format(time.RFC3339) + ", point " + strconv.Itoa(int(earned))
	return contribute(dst, SignalStreaming, p.Weights.Streaming*float64(k), ev, detail)
}

// post scores a social post that Apply found to count, with m what the
// text says about the performer: the affinity point and its recent bonus,
// and the post itself as a post about the show.
//
// A post is about the show when it names the performer (or an alias or tour
// hashtag listed in Names), was not prompted by a reward campaign or a
// promotion, and does not only negate affinity ("I don't like X" is about
// X but says the fan is not one). Posts have diminishing returns: the n-th
// post is worth the step from log2(n) to log2(1+n), capped at PostCap, where
// n is the decayed count of earlier posts; so a burst of posts counts more
// than one but not without bound, and posts spread over half-lives each
// count afresh.
func (s *Scorer) post(dst []Contribution, st *PairState, e *performerEntry, m Match, ev events.Event, lateness float64) []Contribution {
	p := e.prof
	if m.Affinity {
		dst = contribute(dst, SignalAffinity, p.Weights.Affinity, ev, strconv.Quote(m.Word)+" near "+strconv.Quote(m.Name))
		if !e.recentTo.IsZero() && !ev.Time.Before(e.recentFrom) && !ev.Time.After(e.recentTo) {
			days := int(e.recentTo.Sub(ev.Time).Hours() / 24)
			dst = contribute(dst, SignalAffinityRecent, p.Weights.AffinityRecent, ev,
				strconv.Itoa(days)+" days before the show on "+e.recentTo.Format(time.DateOnly))
		}
	}
	n := float64(st.posts)
	share := min(p.PostCap, math.Log2(2+n)) - min(p.PostCap, math.Log2(1+n))
	st.posts = float32(n + lateness)
	return contribute(dst, SignalPost, p.Weights.Post*share, ev,
		"post "+strconv.FormatFloat(n+1, 'f', 1, 64)+" in decayed count, cap "+strconv.FormatFloat(p.PostCap, 'g', -1, 64))
}

// contribute appends a contribution unless it is worth nothing.
func contribute(dst []Contribution, sig Signal, points float64, ev events.Event, detail string) []Contribution {
	if points <= 0 {
		return dst
	}
	return append(dst, Contribution{Signal: sig, Points: points, EventID: eventID(ev), At: ev.Time, Detail: detail})
}

// eventID names an event the way the rest of Crescendo does: ids are unique
// per partner, so the partner is part of it.
func eventID(ev events.Event) string { return ev.Source + "/" + ev.ID }

// showHash is 32-bit FNV-1a, written out because hash/fnv allocates.
func showHash(show string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(show); i++ {
		h ^= uint32(show[i])
		h *= 16777619
	}
	if h == 0 {
		return 1 // 0 means no show attended
	}
	return h
}
