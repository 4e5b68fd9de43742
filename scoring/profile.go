package scoring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/crescendo-hq/crescendo/bots"
)

// Signal names one kind of evidence the index counts (F4). Its values are
// stable: callers persist them with contributions.
type Signal string

// The signals of F4, in the order PRODUCT.md lists them.
const (
	SignalAffinity       Signal = "affinity"        // "love"/"like" near the performer's name in a post
	SignalAffinityRecent Signal = "affinity_recent" // the extra point: that statement within months before the show
	SignalStreaming      Signal = "streaming"       // listening above a threshold within a period
	SignalPhotoTag       Signal = "photo_tag"       // a photo of the performer tagged or linked
	SignalPageView       Signal = "page_view"       // a visit to the performer's site
	SignalFollow         Signal = "follow"          // following the performer
	SignalMerch          Signal = "merch"           // a merchandise purchase
	SignalDonation       Signal = "donation"        // a donation to a charity on the performer's list
	SignalAttendance     Signal = "attendance"      // verified attendance at a show
	SignalPost           Signal = "post"            // a post about the show not prompted by a promotion
	SignalHuman          Signal = "human"           // the account looks human: enough friends (F13)
)

// Signals lists every signal in a fixed order, the order explanations use.
// A function so that callers cannot change it.
func Signals() []Signal {
	return []Signal{
		SignalAffinity, SignalAffinityRecent, SignalStreaming, SignalPhotoTag, SignalPageView,
		SignalFollow, SignalMerch, SignalDonation, SignalAttendance, SignalPost, SignalHuman,
	}
}

// Weights are the points one unit of each signal is worth. The patent speaks
// of "one point or other suitable quantum" per finding, so the defaults are 1
// and marketers scale from there; 0 switches a signal off.
type Weights struct {
	Affinity       float64 `json:"affinity"`
	AffinityRecent float64 `json:"affinity_recent"`
	Streaming      float64 `json:"streaming"`
	PhotoTag       float64 `json:"photo_tag"`
	PageView       float64 `json:"page_view"`
	Follow         float64 `json:"follow"`
	Merch          float64 `json:"merch"`
	Donation       float64 `json:"donation"`
	Attendance     float64 `json:"attendance"`
	Post           float64 `json:"post"`
	Human          float64 `json:"human"`
}

// Of returns the weight of signal s, 0 for an unknown signal.
func (w Weights) Of(s Signal) float64 {
	if p := w.field(s); p != nil {
		return *p
	}
	return 0
}

func (w *Weights) field(s Signal) *float64 {
	switch s {
	case SignalAffinity:
		return &w.Affinity
	case SignalAffinityRecent:
		return &w.AffinityRecent
	case SignalStreaming:
		return &w.Streaming
	case SignalPhotoTag:
		return &w.PhotoTag
	case SignalPageView:
		return &w.PageView
	case SignalFollow:
		return &w.Follow
	case SignalMerch:
		return &w.Merch
	case SignalDonation:
		return &w.Donation
	case SignalAttendance:
		return &w.Attendance
	case SignalPost:
		return &w.Post
	case SignalHuman:
		return &w.Human
	}
	return nil
}

// StreamMode says how listening time becomes points.
type StreamMode string

// The two readings of the patent's streaming indicator.
const (
	// StreamBinary gives one point in a period once the fan's listening in
	// it reaches the threshold.
	StreamBinary StreamMode = "binary"
	// StreamCount gives a point for every threshold's worth of listening in
	// a period, up to StreamCap points per period.
	StreamCount StreamMode = "count"
)

// Profile is a performer's scoring profile (F4, F9): how much each signal is
// worth and how the text and listening rules read the fan's activity.
type Profile struct {
	// ID names the profile; performers refer to it.
	ID      string  `json:"id"`
	Weights Weights `json:"weights"`

	// AffinityWords are the words or phrases of affection ("love", "obsessed
	// with", "❤"), NegationWords those that undo one standing shortly before
	// it ("don't", "never", "no longer"). ComparisonWords make an affinity
	// word right after them a comparison rather than a statement ("looks
	// like", "sounds like"), and ClauseWords end a clause for negation the
	// way a comma does ("but"). All are matched after the same normalization
	// as posts: case-folded, accents and apostrophes removed, so "dont" is
	// how "don't" is written here.
	AffinityWords   []string `json:"affinity_words"`
	NegationWords   []string `json:"negation_words"`
	ComparisonWords []string `json:"comparison_words"`
	ClauseWords     []string `json:"clause_words"`
	// AffinityWindowWords is how many words away from the performer's name
	// an affinity word may stand: in "love X" X is 1 word away.
	AffinityWindowWords int `json:"affinity_window_words"`
	// NegationWindowWords is how many words before an affinity word a
	// negation may end: in "don't really love" it is 2 words before.
	NegationWindowWords int `json:"negation_window_words"`
	// RecentMonths is how many calendar months before the show date an
	// affinity statement earns the extra point; the patent says six.
	RecentMonths int `json:"recent_months"`

	// StreamThresholdMinutes of listening within one StreamPeriod earn a
	// streaming point. Periods are fixed windows counted from Epoch, so
	// that the state keeps one counter rather than a ring of buckets.
	StreamThresholdMinutes float64       `json:"stream_threshold_minutes"`
	StreamPeriod           time.Duration `json:"stream_period"`
	StreamMode             StreamMode    `json:"stream_mode"`
	// StreamCap is the most streaming points one period can earn in
	// StreamCount mode, at most 255.
	StreamCap int `json:"stream_cap"`

	// PostCap caps the post signal: n posts about the show are worth
	// Weights.Post × min(PostCap, log2(1+n)), so 1 post earns 1, 3 earn 2,
	// 7 earn 3, and flooding earns no more than the cap.
	PostCap float64 `json:"post_cap"`

	// HalfLife is how long until a point is worth half; 0 keeps points at
	// full value forever.
	HalfLife time.Duration `json:"half_life"`

	// MinFriends is the friend count from which an account looks human and
	// earns Weights.Human (F13: fewer friends than a threshold suggest a bot).
	MinFriends int `json:"min_friends"`

	// Bots are the thresholds of the other bot signals (F13); zero values
	// take bots.DefaultThresholds.
	Bots bots.Thresholds `json:"bots"`
}

// BotThresholds returns the profile's bot-detection thresholds, defaults
// filled and the friend threshold taken from MinFriends.
func (p Profile) BotThresholds() bots.Thresholds {
	t := p.Bots.WithDefaults()
	t.MinFriends = p.MinFriends
	return t
}

// DefaultProfile returns the profile used when a performer names none: one
// point per signal, English vocabulary, a one-hour-per-week streaming point,
// and a 90-day half-life so that the index follows what fans do now.
func DefaultProfile() Profile {
	return Profile{
		ID: "default",
		Weights: Weights{
			Affinity: 1, AffinityRecent: 1, Streaming: 1, PhotoTag: 1, PageView: 1, Follow: 1,
			Merch: 1, Donation: 1, Attendance: 1, Post: 1, Human: 1,
		},
		AffinityWords: []string{
			"love", "loves", "loved", "loving", "luv", "like", "likes", "liked",
			"adore", "adores", "adored", "obsessed with", "fan", "❤", "♥", "😍", "🥰",
		},
		NegationWords: []string{
			"not", "no", "never", "no longer", "used to", "dont", "doesnt", "didnt", "cant", "cannot",
			"couldnt", "wont", "wouldnt", "isnt", "arent", "wasnt", "werent", "aint", "hardly",
			"barely", "nor", "neither", "without", "stopped",
		},
		ComparisonWords: []string{
			"look", "looks", "looked", "looking", "sound", "sounds", "sounded", "sounding",
			"seem", "seems", "seemed", "feel", "feels", "felt", "feeling", "smell", "smells",
			"taste", "tastes", "act", "acts", "acted", "acting", "dress", "dresses", "dressed",
			"sing", "sings", "sang", "singing", "more", "much", "nothing", "something",
			"anything", "exactly", "lot", "bit",
		},
		ClauseWords:            []string{"but", "yet", "though", "although", "however", "except", "whereas"},
		AffinityWindowWords:    5,
		NegationWindowWords:    3,
		RecentMonths:           6,
		StreamThresholdMinutes: 60,
		StreamPeriod:           7 * 24 * time.Hour,
		StreamMode:             StreamBinary,
		StreamCap:              3,
		PostCap:                3,
		HalfLife:               90 * 24 * time.Hour,
		MinFriends:             25,
	}
}

// maxSeconds is the longest span the compact state can hold, in seconds.
const maxSeconds = math.MaxUint32

// Validate reports every problem with p, each prefixed with its field path
// (JSON names), so that a marketer's console can show them all at once.
func (p Profile) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(p.ID) == "" {
		bad("id", "required")
	}
	for _, s := range Signals() {
		w := p.Weights.Of(s)
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			bad("weights."+string(s), "must be a finite number, 0 or more; got %v", w)
		}
	}

	seen := map[string]string{} // normalized phrase → the path that first used it
	lists := []struct {
		path  string
		words []string
	}{
		{"affinity_words", p.AffinityWords},
		{"negation_words", p.NegationWords},
		{"comparison_words", p.ComparisonWords},
		{"clause_words", p.ClauseWords},
	}
	for _, l := range lists {
		for i, w := range l.words {
			path := fmt.Sprintf("%s[%d]", l.path, i)
			words, _ := normalizePhrase(w)
			if len(words) == 0 {
				bad(path, "%q has no letters, digits or symbols", w)
				continue
			}
			key := strings.Join(words, " ")
			if first, ok := seen[key]; ok {
				if first[:strings.IndexByte(first, '[')] != l.path {
					// The same phrase cannot both affirm and negate.
					bad(path, "%q is also %s", w, first)
				}
				continue
			}
			seen[key] = path
		}
	}
	if len(p.AffinityWords) == 0 {
		bad("affinity_words", "at least one word is required (set weights.affinity to 0 to switch the signal off)")
	}
	if p.AffinityWindowWords < 1 {
		bad("affinity_window_words", "must be at least 1; got %d", p.AffinityWindowWords)
	}
	if p.NegationWindowWords < 1 {
		bad("negation_window_words", "must be at least 1; got %d", p.NegationWindowWords)
	}
	if p.RecentMonths < 0 {
		bad("recent_months", "must be 0 or more; got %d", p.RecentMonths)
	}

	if t := p.StreamThresholdMinutes; math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
		bad("stream_threshold_minutes", "must be a positive number; got %v", t)
	} else if p.StreamPeriod > 0 && t > p.StreamPeriod.Minutes() {
		bad("stream_threshold_minutes", "%v minutes cannot be listened within a stream_period of %v", t, p.StreamPeriod)
	}
	switch {
	case p.StreamPeriod < time.Minute:
		bad("stream_period", "must be at least 1m; got %v", p.StreamPeriod)
	case p.StreamPeriod.Seconds() > maxSeconds:
		bad("stream_period", "must be at most %v; got %v", time.Duration(maxSeconds)*time.Second, p.StreamPeriod)
	case p.StreamPeriod%time.Second != 0:
		bad("stream_period", "must be whole seconds; got %v", p.StreamPeriod)
	}
	switch p.StreamMode {
	case StreamBinary:
	case StreamCount:
		if p.StreamCap < 1 || p.StreamCap > math.MaxUint8 {
			bad("stream_cap", "must be 1 to %d in %s mode; got %d", math.MaxUint8, StreamCount, p.StreamCap)
		}
	default:
		bad("stream_mode", "must be %q or %q; got %q", StreamBinary, StreamCount, p.StreamMode)
	}

	if c := p.PostCap; math.IsNaN(c) || math.IsInf(c, 0) || c <= 0 {
		bad("post_cap", "must be a positive number (set weights.post to 0 to switch the signal off); got %v", c)
	}
	if p.HalfLife < 0 {
		bad("half_life", "must be 0 (no decay) or positive; got %v", p.HalfLife)
	} else if p.HalfLife > 0 && p.HalfLife < time.Minute {
		// The state keeps whole seconds; shorter half-lives would be noise.
		bad("half_life", "must be at least 1m when set; got %v", p.HalfLife)
	}
	if p.MinFriends < 0 {
		bad("min_friends", "must be 0 or more; got %d", p.MinFriends)
	}
	if err := p.Bots.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Performer is what scoring needs to know about one performer.
type Performer struct {
	// ID is the performer id events carry.
	ID string `json:"id"`
	// Names are the performer's name and aliases, and any hashtag or tour
	// name that should count as mentioning them. A hashtag is one word after
	// normalization ("#AuroraLaneLive" is "auroralanelive"), so list it.
	Names []string `json:"names"`
	// Charities are the charity ids whose donations count for the performer.
	Charities []string `json:"charities"`
	// ShowDate is the start of the show tickets are being sold for; affinity
	// statements in the RecentMonths before it earn an extra point. Zero
	// means no show is on sale and no statement earns it.
	ShowDate time.Time `json:"show_date"`
	// ProfileID names the scoring profile; empty means DefaultProfile.
	ProfileID string `json:"profile_id,omitempty"`
}

// Validate reports every problem with p, each prefixed with its field path.
func (p Performer) Validate() error {
	var errs []error
	if strings.TrimSpace(p.ID) == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if len(p.Names) == 0 {
		errs = append(errs, errors.New("names: at least one name is required"))
	}
	for i, n := range p.Names {
		if words, _ := normalizePhrase(n); len(words) == 0 {
			errs = append(errs, fmt.Errorf("names[%d]: %q has no letters, digits or symbols", i, n))
		}
	}
	for i, c := range p.Charities {
		if strings.TrimSpace(c) == "" {
			errs = append(errs, fmt.Errorf("charities[%d]: empty charity id", i))
		} else if slices.Index(p.Charities, c) < i {
			errs = append(errs, fmt.Errorf("charities[%d]: %q is listed twice", i, c))
		}
	}
	return errors.Join(errs...)
}
