package events

import (
	"fmt"
	"strconv"
)

// decodeData reads data, which must be a JSON object, into the payload
// matching e.Type, and validates it. Members the type does not define are
// skipped, so partners may add fields before we use them.
func decodeData(e *Event, data []byte) *Rejection {
	l := &lexer{b: data}
	if l.atEnd() {
		return missing("data")
	}
	if rej := readData(e, l); rej != nil {
		return rej
	}
	// In binary mode data is the whole record value, unchecked so far.
	if rej := l.end(); rej != nil {
		return rej
	}
	return validateData(e)
}

// readData reads the data value at the lexer into the payload matching
// e.Type, leaving the lexer after it.
func readData(e *Event, l *lexer) *Rejection {
	switch l.peek() {
	case '{':
		l.i++
	case 'n':
		if rej := l.literal("null"); rej != nil {
			return rej
		}
		if rej := l.end(); rej != nil {
			return rej
		}
		return missing("data")
	default:
		return l.wrongKind("data", "", "an object")
	}

	var rej *Rejection
	switch e.Type {
	case TypeListen:
		e.Listen, rej = readListen(l)
	case TypePageView:
		e.PageView, rej = readPageView(l)
	case TypeSocialPost:
		e.SocialPost, rej = readSocialPost(l)
	case TypePhotoTag:
		e.PhotoTag, rej = readPhotoTag(l)
	case TypeFollow:
		e.Follow, rej = readFollow(l)
	case TypeTicketPurchase:
		e.TicketPurchase, rej = readTicketPurchase(l)
	case TypeMerchPurchase:
		e.MerchPurchase, rej = readMerchPurchase(l)
	case TypeDonation:
		e.Donation, rej = readDonation(l)
	case TypeAttendance:
		e.Attendance, rej = readAttendance(l)
	case TypeSocialGraph:
		e.SocialGraph, rej = readSocialGraph(l)
	default:
		// decodeAttributes admits only known types.
		panic(fmt.Sprintf("events: no data reader for type %q", e.Type))
	}
	return rej
}

// validateData checks the payload readData read.
func validateData(e *Event) *Rejection {
	switch {
	case e.Listen != nil:
		return validateListen(e.Listen)
	case e.PageView != nil:
		return validatePageView(e.PageView)
	case e.SocialPost != nil:
		return validateSocialPost(e.SocialPost)
	case e.PhotoTag != nil:
		return validatePhotoTag(e.PhotoTag)
	case e.Follow != nil:
		return validateFollow(e.Follow)
	case e.TicketPurchase != nil:
		return validateTicketPurchase(e.TicketPurchase)
	case e.MerchPurchase != nil:
		return validateMerchPurchase(e.MerchPurchase)
	case e.Donation != nil:
		return validateDonation(e.Donation)
	case e.Attendance != nil:
		return validateAttendance(e.Attendance)
	default:
		return validateSocialGraph(e.SocialGraph)
	}
}

// object reads the members of one JSON object whose opening brace has been
// consumed. Its typed readers reject repeated members and record which
// members were present and not null, since a missing number must be told
// apart from a zero, which most numbers allow.
//
// The lexer is passed to each method rather than kept in the struct: the
// path flows into error details, which escape, and escape analysis does not
// tell struct fields apart, so keeping the lexer here would move it to the
// heap on every call.
type object struct {
	path    string
	n       int
	seen    fields
	present fields
}

// next returns the next member's name, or ok == false after the last.
func (o *object) next(l *lexer) (name []byte, ok bool, rej *Rejection) {
	name, ok, rej = l.member(o.n)
	o.n++
	return name, ok, rej
}

func (o *object) str(l *lexer, bit fields, name string, dst *string) *Rejection {
	if rej := o.seen.first(bit, o.path, name); rej != nil {
		return rej
	}
	s, present, rej := l.readString(o.path, name)
	if present {
		o.present |= bit
	}
	*dst = s
	return rej
}

// common reads a string that takes few values, such as a country code;
// known returns the shared copy of a value, and ok false for one it does not
// keep, which is then copied. Listens are most of the stream and each carried
// two such strings: an allocation apiece.
func (o *object) common(l *lexer, bit fields, name string, dst *string, known func([]byte) (string, bool)) *Rejection {
	if rej := o.seen.first(bit, o.path, name); rej != nil {
		return rej
	}
	b, present, rej := l.readBytes(o.path, name)
	if present {
		o.present |= bit
		if s, ok := known(b); ok {
			*dst = s
			return rej
		}
	}
	*dst = string(b)
	return rej
}

// countryCodes holds every pair of upper-case ASCII letters.
var countryCodes = func() (t [26 * 26]string) {
	for i := range t {
		t[i] = string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
	}
	return t
}()

// countryCode returns the shared copy of a two-letter code, upper-cased as
// the listen's country is kept; anything else is upper-cased on a copy.
func countryCode(b []byte) (string, bool) {
	if len(b) == 2 {
		c0, c1 := b[0]&^0x20, b[1]&^0x20 // ASCII upper case, for letters
		if 'A' <= c0 && c0 <= 'Z' && 'A' <= c1 && c1 <= 'Z' {
			return countryCodes[int(c0-'A')*26+int(c1-'A')], true
		}
	}
	return upperASCII(string(b)), true
}

// device returns the shared copy of the common device kinds.
func device(b []byte) (string, bool) {
	switch string(b) {
	case "mobile":
		return "mobile", true
	case "desktop":
		return "desktop", true
	case "tablet":
		return "tablet", true
	case "web":
		return "web", true
	case "speaker":
		return "speaker", true
	case "tv":
		return "tv", true
	case "car":
		return "car", true
	}
	return "", false
}

func (o *object) int(l *lexer, bit fields, name string, dst *int64) *Rejection {
	if rej := o.seen.first(bit, o.path, name); rej != nil {
		return rej
	}
	v, present, rej := l.readInt(o.path, name)
	if present {
		o.present |= bit
	}
	*dst = v
	return rej
}

func (o *object) float(l *lexer, bit fields, name string, dst *float64) *Rejection {
	if rej := o.seen.first(bit, o.path, name); rej != nil {
		return rej
	}
	v, present, rej := l.readFloat(o.path, name)
	if present {
		o.present |= bit
	}
	*dst = v
	return rej
}

// skip discards the value of a member the type does not define.
func (o *object) skip(l *lexer) *Rejection {
	return l.skip(0)
}

// require reports the first of the numeric members in bits that was absent.
func (o *object) require(bits fields, names ...string) *Rejection {
	for i, name := range names {
		if bit := fields(1) << i; bits&bit != 0 && o.present&bit == 0 {
			return missing(join(o.path, name))
		}
	}
	return nil
}

// Member bits, by position in each type's struct.
const (
	bit0 fields = 1 << iota
	bit1
	bit2
	bit3
	bit4
	bit5
)

func readListen(l *lexer) (*Listen, *Rejection) {
	v := new(Listen)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit2, "performer", "track", "ms_played")
			}
			return v, rej
		}
		switch string(name) {
		case "performer":
			rej = o.str(l, bit0, "performer", &v.Performer)
		case "track":
			rej = o.str(l, bit1, "track", &v.Track)
		case "ms_played":
			rej = o.int(l, bit2, "ms_played", &v.MsPlayed)
		case "device":
			rej = o.common(l, bit3, "device", &v.Device, device)
		case "country":
			rej = o.common(l, bit4, "country", &v.Country, countryCode)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readPageView(l *lexer) (*PageView, *Rejection) {
	v := new(PageView)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			return v, rej
		}
		switch string(name) {
		case "performer":
			rej = o.str(l, bit0, "performer", &v.Performer)
		case "url":
			rej = o.str(l, bit1, "url", &v.URL)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readSocialPost(l *lexer) (*SocialPost, *Rejection) {
	v := new(SocialPost)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			return v, rej
		}
		switch string(name) {
		case "text":
			rej = o.str(l, bit0, "text", &v.Text)
		case "channel":
			rej = o.str(l, bit1, "channel", &v.Channel)
		case "reward_campaign":
			rej = o.str(l, bit2, "reward_campaign", &v.RewardCampaign)
		case "in_reply_to_promo":
			rej = o.str(l, bit3, "in_reply_to_promo", &v.InReplyToPromo)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readPhotoTag(l *lexer) (*PhotoTag, *Rejection) {
	v := new(PhotoTag)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			return v, rej
		}
		if string(name) == "performer" {
			rej = o.str(l, bit0, "performer", &v.Performer)
		} else {
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readFollow(l *lexer) (*Follow, *Rejection) {
	v := new(Follow)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			return v, rej
		}
		if string(name) == "performer" {
			rej = o.str(l, bit0, "performer", &v.Performer)
		} else {
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readTicketPurchase(l *lexer) (*TicketPurchase, *Rejection) {
	v := new(TicketPurchase)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit2|bit3|bit4, "event", "performer", "venue", "quantity", "price")
			}
			return v, rej
		}
		switch string(name) {
		case "event":
			rej = o.str(l, bit0, "event", &v.Event)
		case "performer":
			rej = o.str(l, bit1, "performer", &v.Performer)
		case "venue":
			if rej = o.seen.first(bit2, o.path, "venue"); rej != nil {
				break
			}
			var present bool
			if present, rej = l.beginObject(o.path, "venue"); present && rej == nil {
				o.present |= bit2
				rej = readVenue(l, &v.Venue)
			}
		case "quantity":
			rej = o.int(l, bit3, "quantity", &v.Quantity)
		case "price":
			rej = o.int(l, bit4, "price", &v.Price)
		case "currency":
			rej = o.str(l, bit5, "currency", &v.Currency)
			v.Currency = upperASCII(v.Currency)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readVenue(l *lexer, v *Venue) *Rejection {
	o := object{path: "data.venue"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit0|bit1, "lat", "lon")
			}
			return rej
		}
		switch string(name) {
		case "lat":
			rej = o.float(l, bit0, "lat", &v.Lat)
		case "lon":
			rej = o.float(l, bit1, "lon", &v.Lon)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return rej
		}
	}
}

func readMerchPurchase(l *lexer) (*MerchPurchase, *Rejection) {
	v := new(MerchPurchase)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit2, "performer", "item", "amount")
			}
			return v, rej
		}
		switch string(name) {
		case "performer":
			rej = o.str(l, bit0, "performer", &v.Performer)
		case "item":
			rej = o.str(l, bit1, "item", &v.Item)
		case "amount":
			rej = o.int(l, bit2, "amount", &v.Amount)
		case "currency":
			rej = o.str(l, bit3, "currency", &v.Currency)
			v.Currency = upperASCII(v.Currency)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readDonation(l *lexer) (*Donation, *Rejection) {
	v := new(Donation)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit1, "charity", "amount")
			}
			return v, rej
		}
		switch string(name) {
		case "charity":
			rej = o.str(l, bit0, "charity", &v.Charity)
		case "amount":
			rej = o.int(l, bit1, "amount", &v.Amount)
		case "currency":
			rej = o.str(l, bit2, "currency", &v.Currency)
			v.Currency = upperASCII(v.Currency)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readAttendance(l *lexer) (*Attendance, *Rejection) {
	v := new(Attendance)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			return v, rej
		}
		switch string(name) {
		case "event":
			rej = o.str(l, bit0, "event", &v.Event)
		case "performer":
			rej = o.str(l, bit1, "performer", &v.Performer)
		case "verified_by":
			rej = o.str(l, bit2, "verified_by", &v.VerifiedBy)
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

func readSocialGraph(l *lexer) (*SocialGraph, *Rejection) {
	v := new(SocialGraph)
	o := object{path: "data"}
	for {
		name, ok, rej := o.next(l)
		if rej != nil || !ok {
			if rej == nil {
				rej = o.require(bit0, "friend_count")
			}
			return v, rej
		}
		switch string(name) {
		case "friend_count":
			rej = o.int(l, bit0, "friend_count", &v.FriendCount)
		case "friend_ids":
			if rej = o.seen.first(bit1, o.path, "friend_ids"); rej == nil {
				v.FriendIDs, rej = readStrings(l, "data.friend_ids")
			}
		case "interactions":
			if rej = o.seen.first(bit2, o.path, "interactions"); rej == nil {
				v.Interactions, rej = readInteractions(l)
			}
		default:
			rej = o.skip(l)
		}
		if rej != nil {
			return nil, rej
		}
	}
}

// readStrings reads an array of strings. An empty array reads as nil, like
// an absent one, so that decoded events compare equal after re-encoding.
func readStrings(l *lexer, path string) ([]string, *Rejection) {
	if present, rej := l.beginArray(path, ""); !present || rej != nil {
		return nil, rej
	}
	var out []string
	for n := 0; ; n++ {
		more, rej := l.element(n)
		if rej != nil {
			return nil, rej
		}
		if !more {
			return out, nil
		}
		if n == maxListLen {
			return nil, reject(ReasonInvalidField, "%s has more than %d entries", path, maxListLen)
		}
		if l.peek() != '"' {
			return nil, l.wrongKind(path+"["+strconv.Itoa(n)+"]", "", "a string")
		}
		s, rej := l.string()
		if rej != nil {
			return nil, rej
		}
		out = append(out, string(s))
	}
}

// readInteractions reads the interactions array; see readStrings for why
// an empty one is nil.
func readInteractions(l *lexer) ([]Interaction, *Rejection) {
	const path = "data.interactions"
	if present, rej := l.beginArray(path, ""); !present || rej != nil {
		return nil, rej
	}
	var out []Interaction
	for n := 0; ; n++ {
		more, rej := l.element(n)
		if rej != nil {
			return nil, rej
		}
		if !more {
			return out, nil
		}
		if n == maxListLen {
			return nil, reject(ReasonInvalidField, "%s has more than %d entries", path, maxListLen)
		}
		// Social graphs are rare next to listens, so building each
		// element's path up front costs nothing that matters.
		o := object{path: path + "[" + strconv.Itoa(n) + "]"}
		present, rej := l.beginObject(o.path, "")
		if rej != nil {
			return nil, rej
		}
		if !present {
			return nil, reject(ReasonInvalidField, "%s: want an object, got null", o.path)
		}
		var in Interaction
		for {
			name, ok, rej := o.next(l)
			if rej != nil {
				return nil, rej
			}
			if !ok {
				break
			}
			switch string(name) {
			case "with":
				rej = o.str(l, bit0, "with", &in.With)
			case "count":
				rej = o.int(l, bit1, "count", &in.Count)
			default:
				rej = o.skip(l)
			}
			if rej != nil {
				return nil, rej
			}
		}
		if rej := o.require(bit1, "with", "count"); rej != nil {
			return nil, rej
		}
		out = append(out, in)
	}
}
