// Package scoring keeps the dynamic index of F4 for a (fan, performer) pair:
// points from the fan's activity, each weighted by the performer's scoring
// profile, decaying with a half-life, and explained event by event (F6).
//
// It is plain Go with no Kafka, HTTP or SQL, and no clock: every time comes
// from an event or an argument, so replaying the same events gives the same
// index, which is what the consumer's exactly-once checkpoints rely on.
//
// # Using it
//
// Build a Scorer from the profiles and performers (NewScorer). For each
// event, Targets names the performers it concerns; Apply updates each pair's
// PairState and returns the points gained and Contribution records to store.
// social_graph events go to the fan's FanState instead (FanState.Apply).
// Scorer.Index reads a pair's index at a time; PairState.Recompute folds
// decay into the state on a schedule; Explain rebuilds the breakdown from
// stored contributions.
//
// # Signals and points
//
// Each finding is worth its signal's weight (default 1, after the patent's
// "one point or other suitable quantum"):
//
//   - affinity: a social post with an affinity word ("love", "like", "obsessed
//     with", "❤") within AffinityWindowWords words of the performer's name or
//     alias, not negated by a negation word up to NegationWindowWords words
//     before it in the same clause, and not a comparison ("sounds like X").
//     One per post. "like" counts as affinity except right after a comparison
//     word: "looks like X", "sounds just like X" and "feel like" do not count,
//     "I like X" does, and "people like X" (such as) is a known false positive.
//   - affinity_recent: the same statement made within RecentMonths (six)
//     calendar months before the show date, both ends included.
//   - streaming: listening within fixed periods aligned to Epoch. Binary mode
//     gives one point per period once the threshold is reached; count mode a
//     point per threshold reached, up to StreamCap per period.
//   - photo_tag: each tag. page_view: the first visit per UTC day.
//     follow: once per pair. merch: each paid purchase (not per amount:
//     amounts have currencies and no rates). donation: each gift to a charity
//     on the performer's list. attendance: each show once.
//   - post: a post naming the performer that no reward campaign or promotion
//     prompted and that does not only negate affinity. n posts are worth
//     weight × min(PostCap, log2(1+n)), n being the decayed post count.
//   - human: the fan's latest friend count reaches MinFriends (F13). It is a
//     per-fan fact, added when reading (HumanPoints), and does not decay.
//
// # Text
//
// Posts and names are normalized alike: case folded (lower of upper, so any
// case variant matches), accented Latin letters spelled plainly ("Beyoncé"
// is "beyonce", precomposed or not), apostrophes dropped ("don’t" is "dont"),
// and everything that is not a letter, digit or vocabulary symbol separates
// words. A statement is attributed to the nearest performer name, so "I don't
// like Y but I love X" is affinity for X only.
//
// # Decay and memory
//
// A PairState keeps a float32 sum expressed at a uint32 time (seconds since
// Epoch) and small counters: 28 bytes, no pointers. In a map with a 20-byte
// PairKey a pair costs 78 to 117 bytes of heap, depending on where the map is
// in its growth cycle (117 just after its tables split), under the 128-byte
// budget; TestPairMemoryBudget holds it there. Reading multiplies the sum by
// 2^(-Δt/HalfLife); Recompute folds that in. Since decay is linear, a late
// event simply adds its points decayed from its own time.
package scoring
