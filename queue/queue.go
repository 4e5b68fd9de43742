// Package queue holds the rules of social queuing (F12): which queue a fan
// joins for a show's sale, in what order the queues are admitted, how far a
// fan is from the front, how many of each queue the next batch admits, and
// which seat section each queue maps to. It is plain Go: the store keeps the
// queues and decides sequence numbers, the API speaks HTTP.
//
// Priority tiers are admitted first, highest tier first, then the general
// queue, then accounts classified as automated when a sale relegates them
// rather than barring them. Within a queue it is first come, first served.
package queue

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Queue is one queue of a sale. Positive values are priority tiers (the tier
// of the fan's best offer for the show, 1-based as offers number them);
// General and Relegated are the two queues behind every tier. A greater
// value is admitted earlier.
type Queue int

const (
	// General is the queue of fans without a priority tier.
	General Queue = 0
	// Relegated is the queue of automated accounts under the relegate policy,
	// admitted after the general queue.
	Relegated Queue = -1
)

// Tier returns the queue of a priority tier; tiers below 1 are General.
func Tier(t int) Queue {
	if t < 1 {
		return General
	}
	return Queue(t)
}

// String names the queue: "tier-2", "general" or "relegated".
func (q Queue) String() string {
	switch {
	case q == General:
		return "general"
	case q == Relegated:
		return "relegated"
	case q > 0:
		return "tier-" + strconv.Itoa(int(q))
	default:
		return "queue" + strconv.Itoa(int(q))
	}
}

// MarshalText encodes the queue by its name.
func (q Queue) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// Before reports whether q is admitted before other.
func (q Queue) Before(other Queue) bool { return q > other }

// Sort orders queues for admission: priority tiers from the highest down,
// then General, then Relegated.
func Sort(qs []Queue) {
	slices.SortFunc(qs, func(a, b Queue) int { return int(b) - int(a) })
}

// Class is what bot detection (F13, F14) concluded about an account.
type Class string

// The classes an account can have. Until an account is classified it is
// Unknown, which is treated as human.
const (
	Human     Class = "human"
	Automated Class = "automated"
	Unknown   Class = "unknown"
	// Suspect accounts are marked for review and queue as humans do.
	Suspect Class = "suspect"
)

// Valid reports whether c is one of the classes above.
func (c Class) Valid() bool { return c == Human || c == Automated || c == Unknown || c == Suspect }

// Policy is what a sale does with accounts classified as automated.
type Policy string

const (
	// Relegate puts automated accounts in the Relegated queue, after general.
	Relegate Policy = "relegate"
	// Bar refuses automated accounts a place in the queue.
	Bar Policy = "bar"
)

// Valid reports whether p is one of the policies above.
func (p Policy) Valid() bool { return p == Relegate || p == Bar }

// AgentPolicy is what a sale does with fans' declared software agents (F15).
// Under either, an agent never goes ahead of a person of the same tier by
// speed alone.
type AgentPolicy string

const (
	// AgentsHold admits agents from one batch interval after the sale opens,
	// when the opening rush that reflexes would win is over; then they queue
	// in their fan's tier like anyone.
	AgentsHold AgentPolicy = "hold"
	// AgentsBar admits no agents: fans join this sale themselves.
	AgentsBar AgentPolicy = "bar"
)

// Valid reports whether p is one of the agent policies above.
func (p AgentPolicy) Valid() bool { return p == AgentsHold || p == AgentsBar }

// ErrBarred is Assign's answer for an automated account under the Bar policy.
var ErrBarred = errors.New("automated accounts are barred from this sale")

// Assign returns the queue a fan joins: their priority tier (0 without one)
// for a human or unclassified account. An automated account never gets
// priority (F14): it is Relegated, or ErrBarred under the Bar policy.
func Assign(tier int, class Class, p Policy) (Queue, error) {
	if class != Automated {
		return Tier(tier), nil
	}
	if p == Bar {
		return 0, ErrBarred
	}
	return Relegated, nil
}

// Waiting is how many fans a queue holds that are not admitted yet.
type Waiting struct {
	Queue Queue
	Count int64
}

// Position is a waiting fan's 1-based place in the whole sale: everyone
// waiting in the queues admitted before theirs, plus the aheadInQueue fans
// waiting before them in their own queue, plus one. A fan's position only
// moves back when fans with priority join after them.
func Position(q Queue, aheadInQueue int64, waiting []Waiting) int64 {
	pos := aheadInQueue + 1
	for _, w := range waiting {
		if w.Queue.Before(q) {
			pos += w.Count
		}
	}
	return pos
}

// Batch splits a batch of size fans over the waiting queues in admission
// order: each queue gives as many as it holds before the next is reached.
// It returns only queues that give at least one fan, in admission order.
func Batch(size int64, waiting []Waiting) []Waiting {
	ordered := slices.Clone(waiting)
	slices.SortFunc(ordered, func(a, b Waiting) int { return int(b.Queue) - int(a.Queue) })
	var out []Waiting
	for _, w := range ordered {
		if size <= 0 {
			break
		}
		n := min(size, w.Count)
		if n <= 0 {
			continue
		}
		out = append(out, Waiting{Queue: w.Queue, Count: n})
		size -= n
	}
	return out
}

// NextBatchAt returns when the batch after one admitted at now may run, given
// when that batch was due: one interval after it was due, so a job that runs
// a little late does not slow the rate down, but never earlier than one
// interval after now, so a sale that sat idle (or a stopped job) does not
// admit a burst of batches to catch up.
func NextBatchAt(due, now time.Time, interval time.Duration) time.Time {
	next := due.Add(interval)
	if !next.After(now) {
		next = now.Add(interval)
	}
	return next
}

// Sections maps priority tiers to seat sections; key 0 is the general
// queue's section.
type Sections map[int]string

// For returns the section of a queue: that of the highest mapped tier at or
// below the queue's tier, so an unmapped tier shares the next lower tier's
// section. Relegated accounts get the general section. It is "" when nothing
// at or below the tier is mapped.
func (s Sections) For(q Queue) string {
	if q < General {
		q = General
	}
	best, found := -1, ""
	for t, name := range s {
		if t <= int(q) && t > best {
			best, found = t, name
		}
	}
	return found
}

// ParseSections reads sections keyed by tier numbers written as strings, as
// JSON carries them ({"2": "Floor A", "0": "General"}). Every problem is
// reported, each as "sections[key]: reason".
func ParseSections(m map[string]string) (Sections, error) {
	out := make(Sections, len(m))
	var problems []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		t, err := strconv.Atoi(k)
		if err != nil || t < 0 || strconv.Itoa(t) != k {
			problems = append(problems, fmt.Errorf("sections[%q]: must be a tier number, 0 for the general queue", k))
			continue
		}
		out[t] = m[k]
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return out, nil
}

// Strings returns the sections keyed by tier numbers written as strings, the
// form ParseSections reads.
func (s Sections) Strings() map[string]string {
	out := make(map[string]string, len(s))
	for t, name := range s {
		out[strconv.Itoa(t)] = name
	}
	return out
}

// Limits on a sale's settings.
const (
	MaxBatchSize   = 100_000
	MinInterval    = time.Second // the admission job's resolution
	MaxInterval    = 24 * time.Hour
	MaxTier        = 1_000
	maxSectionName = 200
)

// Settings are how a sale's queue is admitted.
type Settings struct {
	// BatchSize is how many fans each batch admits.
	BatchSize int
	// BatchInterval is the time between batches.
	BatchInterval time.Duration
	// Sections maps tiers to seat sections.
	Sections Sections
	// Automated is what happens to accounts classified as automated.
	Automated Policy
	// Agents is what happens to declared agents joining for their fans;
	// empty: AgentsHold.
	Agents AgentPolicy
}

// Validate reports every problem with the settings, each as "field: reason".
func (s Settings) Validate() error {
	var problems []error
	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		problems = append(problems, fmt.Errorf("batch_size: must be 1 to %d; got %d", MaxBatchSize, s.BatchSize))
	}
	if s.BatchInterval < MinInterval || s.BatchInterval > MaxInterval {
		problems = append(problems, fmt.Errorf("batch_interval: must be %s to %s; got %s", MinInterval, MaxInterval, s.BatchInterval))
	}
	if !s.Automated.Valid() {
		problems = append(problems, fmt.Errorf("automated: must be %q or %q; got %q", Relegate, Bar, s.Automated))
	}
	if s.Agents != "" && !s.Agents.Valid() {
		problems = append(problems, fmt.Errorf("agents: must be %q or %q; got %q", AgentsHold, AgentsBar, s.Agents))
	}
	for _, t := range slices.Sorted(maps.Keys(s.Sections)) {
		name := s.Sections[t]
		switch {
		case t < 0 || t > MaxTier:
			problems = append(problems, fmt.Errorf("sections[%q]: tiers are 0 (general) to %d", strconv.Itoa(t), MaxTier))
		case name == "":
			problems = append(problems, fmt.Errorf("sections[%q]: a section name is required", strconv.Itoa(t)))
		case len(name) > maxSectionName:
			problems = append(problems, fmt.Errorf("sections[%q]: at most %d bytes", strconv.Itoa(t), maxSectionName))
		}
	}
	return errors.Join(problems...)
}
