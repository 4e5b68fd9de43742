package events

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on field values. They are generous: their job is to keep absurd
// input out of memory and the database, not to police partners.
const (
	// maxIDLen bounds id, source, subject and every id-like or name-like
	// data field.
	maxIDLen = 256
	// maxTextLen bounds social post text; long-form posts run to a few KiB.
	maxTextLen = 16 << 10
	// maxURLLen is the de facto browser URL limit.
	maxURLLen = 2048
	// maxListLen bounds friend_ids and interactions.
	maxListLen = 10_000
	// maxMsPlayed is 24 hours: a longer single play is a bug or a lie.
	maxMsPlayed = 24 * 60 * 60 * 1000
	// maxQuantity is tickets per purchase. Automated accounts buy many, and
	// those purchases are evidence the bot signals need, so the bound is
	// loose.
	maxQuantity = 100_000
)

// minTime is the earliest event time accepted. Nothing a fan did predates
// it, and it keeps times far from the edges RFC 3339 can express.
var minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func missing(path string) *Rejection {
	return reject(ReasonMissingField, "%s is required", path)
}

// isBlank reports whether s is empty or white space only.
func isBlank(s string) bool {
	return strings.TrimSpace(s) == ""
}

// checkContext validates the context attributes shared by Decode and Encode.
func checkContext(id, source, subject string) *Rejection {
	if rej := checkID("id", id); rej != nil {
		return rej
	}
	if rej := checkSource(source); rej != nil {
		return rej
	}
	return checkID("subject", subject)
}

// checkSource validates the source attribute.
func checkSource(source string) *Rejection {
	if rej := checkID("source", source); rej != nil {
		return rej
	}
	if !isURIReference(source) {
		return reject(ReasonInvalidField, "source %.64q is not a URI reference", source)
	}
	return nil
}

func checkTime(t time.Time) *Rejection {
	if t.Before(minTime) {
		return reject(ReasonInvalidField, "time %s is before 1970", t.Format(time.RFC3339Nano))
	}
	return nil
}

// checkID checks a required name-like string.
func checkID(path, s string) *Rejection {
	if isBlank(s) {
		return missing(path)
	}
	if len(s) > maxIDLen {
		return reject(ReasonInvalidField, "%s is %d bytes, longer than %d", path, len(s), maxIDLen)
	}
	return nil
}

// checkOptionalID checks an optional name-like string.
func checkOptionalID(path, s string) *Rejection {
	if s == "" {
		return nil
	}
	return checkID(path, s)
}

// isURIReference reports whether s is made only of characters RFC 3986
// allows in a URI reference. It is deliberately not a full parse: source is
// on the hot path and is matched against known partners anyway.
func isURIReference(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '"', '<', '>', '\\', '^', '`', '{', '|', '}':
			return false
		}
	}
	return true
}

// isMediaType reports whether the media type s, ignoring parameters, is
// want (which is lower case).
func isMediaType(s, want string) bool {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.EqualFold(strings.TrimSpace(s), want)
}

// isJSONMediaType accepts application/json and any application/*+json
// (RFC 6839), ignoring parameters such as charset.
func isJSONMediaType(s string) bool {
	if s == "application/json" { // what nearly every producer sends
		return true
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	const app = "application/"
	if len(s) <= len(app) || !strings.EqualFold(s[:len(app)], app) {
		return false
	}
	sub := s[len(app):]
	if strings.EqualFold(sub, "json") {
		return true
	}
	return len(sub) > len("+json") && strings.EqualFold(sub[len(sub)-len("+json"):], "+json") &&
		!strings.ContainsAny(sub, "/ ")
}

// upperASCII upper-cases ASCII letters, allocating only when s has lower
// case ones.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// isUpperCode reports whether s is n ASCII upper case letters, the shape of
// ISO 3166-1 alpha-2 and ISO 4217 codes.
func isUpperCode(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func checkCurrency(path, s string) *Rejection {
	if s != "" && !isUpperCode(s, 3) {
		return reject(ReasonInvalidField, "%s %.16q is not an ISO 4217 code", path, s)
	}
	return nil
}

func checkAmount(path string, v int64) *Rejection {
	if v < 0 {
		return reject(ReasonInvalidField, "%s is %d, want 0 or more", path, v)
	}
	return nil
}

func validateListen(l *Listen) *Rejection {
	if rej := checkID("data.performer", l.Performer); rej != nil {
		return rej
	}
	if rej := checkID("data.track", l.Track); rej != nil {
		return rej
	}
	if l.MsPlayed < 0 || l.MsPlayed > maxMsPlayed {
		return reject(ReasonInvalidField, "data.ms_played is %d, want 0 to %d", l.MsPlayed, maxMsPlayed)
	}
	if rej := checkID("data.device", l.Device); rej != nil {
		return rej
	}
	if l.Country == "" {
		return missing("data.country")
	}
	if !isUpperCode(l.Country, 2) {
		return reject(ReasonInvalidField, "data.country %.16q is not an ISO 3166-1 alpha-2 code", l.Country)
	}
	return nil
}

func validatePageView(p *PageView) *Rejection {
	if rej := checkID("data.performer", p.Performer); rej != nil {
		return rej
	}
	if isBlank(p.URL) {
		return missing("data.url")
	}
	if len(p.URL) > maxURLLen {
		return reject(ReasonInvalidField, "data.url is %d bytes, longer than %d", len(p.URL), maxURLLen)
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return reject(ReasonInvalidField, "data.url %.64q is not an absolute http(s) URL", p.URL)
	}
	return nil
}

func validateSocialPost(p *SocialPost) *Rejection {
	if isBlank(p.Text) {
		return missing("data.text")
	}
	if len(p.Text) > maxTextLen {
		return reject(ReasonInvalidField, "data.text is %d bytes, longer than %d", len(p.Text), maxTextLen)
	}
	if rej := checkID("data.channel", p.Channel); rej != nil {
		return rej
	}
	if rej := checkOptionalID("data.reward_campaign", p.RewardCampaign); rej != nil {
		return rej
	}
	return checkOptionalID("data.in_reply_to_promo", p.InReplyToPromo)
}

func validatePhotoTag(p *PhotoTag) *Rejection {
	return checkID("data.performer", p.Performer)
}

func validateFollow(f *Follow) *Rejection {
	return checkID("data.performer", f.Performer)
}

func validateTicketPurchase(t *TicketPurchase) *Rejection {
	if rej := checkID("data.event", t.Event); rej != nil {
		return rej
	}
	if rej := checkID("data.performer", t.Performer); rej != nil {
		return rej
	}
	// Written so that NaN, which Encode could be handed, fails too.
	if !(t.Venue.Lat >= -90 && t.Venue.Lat <= 90) {
		return reject(ReasonInvalidField, "data.venue.lat is %g, want -90 to 90", t.Venue.Lat)
	}
	if !(t.Venue.Lon >= -180 && t.Venue.Lon <= 180) {
		return reject(ReasonInvalidField, "data.venue.lon is %g, want -180 to 180", t.Venue.Lon)
	}
	if t.Quantity < 1 || t.Quantity > maxQuantity {
		return reject(ReasonInvalidField, "data.quantity is %d, want 1 to %d", t.Quantity, maxQuantity)
	}
	if rej := checkAmount("data.price", t.Price); rej != nil {
		return rej
	}
	return checkCurrency("data.currency", t.Currency)
}

func validateMerchPurchase(m *MerchPurchase) *Rejection {
	if rej := checkID("data.performer", m.Performer); rej != nil {
		return rej
	}
	if rej := checkID("data.item", m.Item); rej != nil {
		return rej
	}
	if rej := checkAmount("data.amount", m.Amount); rej != nil {
		return rej
	}
	return checkCurrency("data.currency", m.Currency)
}

func validateDonation(d *Donation) *Rejection {
	if rej := checkID("data.charity", d.Charity); rej != nil {
		return rej
	}
	if rej := checkAmount("data.amount", d.Amount); rej != nil {
		return rej
	}
	return checkCurrency("data.currency", d.Currency)
}

func validateAttendance(a *Attendance) *Rejection {
	if rej := checkID("data.event", a.Event); rej != nil {
		return rej
	}
	if rej := checkID("data.performer", a.Performer); rej != nil {
		return rej
	}
	return checkID("data.verified_by", a.VerifiedBy)
}

func validateSocialGraph(g *SocialGraph) *Rejection {
	if g.FriendCount < 0 {
		return reject(ReasonInvalidField, "data.friend_count is %d, want 0 or more", g.FriendCount)
	}
	if len(g.FriendIDs) > maxListLen {
		return reject(ReasonInvalidField, "data.friend_ids has %d entries, more than %d", len(g.FriendIDs), maxListLen)
	}
	for i, id := range g.FriendIDs {
		if rej := checkID("data.friend_ids["+strconv.Itoa(i)+"]", id); rej != nil {
			return rej
		}
	}
	if len(g.Interactions) > maxListLen {
		return reject(ReasonInvalidField, "data.interactions has %d entries, more than %d", len(g.Interactions), maxListLen)
	}
	for i, in := range g.Interactions {
		if rej := checkID("data.interactions["+strconv.Itoa(i)+"].with", in.With); rej != nil {
			return rej
		}
		if in.Count < 1 {
			return reject(ReasonInvalidField, "data.interactions[%d].count is %d, want 1 or more", i, in.Count)
		}
	}
	return nil
}
