package events

import "time"

// Header is a transport header (a Kafka record header). It is declared here
// so that the package stays free of any Kafka client.
type Header struct {
	Key   string
	Value []byte
}

// Type is a CloudEvents `type`. Its value is the exact wire name: partners
// send `listen`, not `com.example.listen`.
type Type string

// The event types partners publish. Each has its own data struct, named
// after the type.
const (
	TypeListen         Type = "listen"
	TypePageView       Type = "page_view"
	TypeSocialPost     Type = "social_post"
	TypePhotoTag       Type = "photo_tag"
	TypeFollow         Type = "follow"
	TypeTicketPurchase Type = "ticket_purchase"
	TypeMerchPurchase  Type = "merch_purchase"
	TypeDonation       Type = "donation"
	TypeAttendance     Type = "attendance"
	TypeSocialGraph    Type = "social_graph"
)

// Types lists every known type, in the order PRODUCT.md lists them. It is a
// function rather than a variable so that callers cannot change it.
func Types() []Type {
	return []Type{
		TypeListen, TypePageView, TypeSocialPost, TypePhotoTag, TypeFollow,
		TypeTicketPurchase, TypeMerchPurchase, TypeDonation, TypeAttendance, TypeSocialGraph,
	}
}

// Valid reports whether t is one of the known types.
func (t Type) Valid() bool {
	switch t {
	case TypeListen, TypePageView, TypeSocialPost, TypePhotoTag, TypeFollow,
		TypeTicketPurchase, TypeMerchPurchase, TypeDonation, TypeAttendance, TypeSocialGraph:
		return true
	}
	return false
}

// Event is one decoded, validated fan activity event.
//
// Exactly one of the data pointers is non-nil: the one matching Type.
type Event struct {
	// ID is the CloudEvents `id`, unique per Source; (Source, ID) identifies
	// the event for deduplication.
	ID string
	// Source is the CloudEvents `source`: it names the partner.
	Source string
	// Subject is the CloudEvents `subject`: the partner's user id, which is
	// also the Kafka record key.
	Subject string
	// Type is the CloudEvents `type`.
	Type Type
	// Time is when the activity happened, in UTC.
	Time time.Time

	// The payload: only the field for Type is set.
	Listen         *Listen
	PageView       *PageView
	SocialPost     *SocialPost
	PhotoTag       *PhotoTag
	Follow         *Follow
	TicketPurchase *TicketPurchase
	MerchPurchase  *MerchPurchase
	Donation       *Donation
	Attendance     *Attendance
	SocialGraph    *SocialGraph
}

// Performer returns the performer the event is about, or "" for the types
// that are not about one performer (social_post, donation, social_graph).
func (e Event) Performer() string {
	switch {
	case e.Listen != nil:
		return e.Listen.Performer
	case e.PageView != nil:
		return e.PageView.Performer
	case e.PhotoTag != nil:
		return e.PhotoTag.Performer
	case e.Follow != nil:
		return e.Follow.Performer
	case e.TicketPurchase != nil:
		return e.TicketPurchase.Performer
	case e.MerchPurchase != nil:
		return e.MerchPurchase.Performer
	case e.Attendance != nil:
		return e.Attendance.Performer
	}
	return ""
}

// Listen is the data of a `listen` event: audio streamed.
type Listen struct {
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
	// Track names the track played.
	Track string `json:"track"`
	// MsPlayed is how long the track played, in milliseconds, 0 to 24 hours.
	MsPlayed int64 `json:"ms_played"`
	// Device is a free-form device kind such as "mobile" or "speaker".
	Device string `json:"device"`
	// Country is the ISO 3166-1 alpha-2 code where the fan listened,
	// upper case (lower case input is upper-cased).
	Country string `json:"country"`
}

// PageView is the data of a `page_view` event: a visit to a performer's site
// or page.
type PageView struct {
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
	// URL is the absolute http or https URL visited.
	URL string `json:"url"`
}

// SocialPost is the data of a `social_post` event: a post or tweet.
type SocialPost struct {
	// Text is the post's text, which the index scans for affinity
	// statements about performers.
	Text string `json:"text"`
	// Channel is a free-form network name such as "x" or "instagram".
	Channel string `json:"channel"`
	// RewardCampaign, when set, is the id of the reward campaign that
	// prompted the post; such posts do not count for the index.
	RewardCampaign string `json:"reward_campaign,omitempty"`
	// InReplyToPromo, when set, is the id of the promotion the post answers;
	// such posts do not count for the index either.
	InReplyToPromo string `json:"in_reply_to_promo,omitempty"`
}

// PhotoTag is the data of a `photo_tag` event: a photo of the performer
// tagged or linked to the fan's profile.
type PhotoTag struct {
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
}

// Follow is the data of a `follow` event: a follow or like of the performer.
type Follow struct {
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
}

// TicketPurchase is the data of a `ticket_purchase` event: a past purchase.
//
// On the wire the venue is an object: `"venue": {"lat": 51.5, "lon": -0.12}`.
type TicketPurchase struct {
	// Event is the partner's id for the show.
	Event string `json:"event"`
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
	Venue     Venue  `json:"venue"`
	// Quantity is the number of tickets bought, 1 or more.
	Quantity int64 `json:"quantity"`
	// Price is the price of one ticket in minor units of Currency (cents
	// for USD), 0 or more.
	Price int64 `json:"price"`
	// Currency is the optional ISO 4217 code of Price, upper case.
	Currency string `json:"currency,omitempty"`
}

// Venue is where a show takes place, in WGS 84 degrees.
type Venue struct {
	// Lat is the latitude, -90 to 90.
	Lat float64 `json:"lat"`
	// Lon is the longitude, -180 to 180.
	Lon float64 `json:"lon"`
}

// MerchPurchase is the data of a `merch_purchase` event.
type MerchPurchase struct {
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
	// Item names what was bought.
	Item string `json:"item"`
	// Amount is what the fan paid in minor units of Currency, 0 or more.
	Amount int64 `json:"amount"`
	// Currency is the optional ISO 4217 code of Amount, upper case.
	Currency string `json:"currency,omitempty"`
}

// Donation is the data of a `donation` event.
type Donation struct {
	// Charity is the partner's id for the charity.
	Charity string `json:"charity"`
	// Amount is what the fan gave in minor units of Currency, 0 or more.
	Amount int64 `json:"amount"`
	// Currency is the optional ISO 4217 code of Amount, upper case.
	Currency string `json:"currency,omitempty"`
}

// Attendance is the data of an `attendance` event: verified attendance at a
// show.
type Attendance struct {
	// Event is the partner's id for the show.
	Event string `json:"event"`
	// Performer is the partner's name or id for the performer.
	Performer string `json:"performer"`
	// VerifiedBy says how attendance was verified, such as "ticket_scan".
	VerifiedBy string `json:"verified_by"`
}

// SocialGraph is the data of a `social_graph` event: profile facts from a
// social network, used to tell humans from automated accounts.
type SocialGraph struct {
	// FriendCount is the number of friends or followers, 0 or more.
	FriendCount int64 `json:"friend_count"`
	// FriendIDs optionally lists the friends' partner user ids.
	FriendIDs []string `json:"friend_ids,omitempty"`
	// Interactions optionally lists whom the fan talks to and how often.
	Interactions []Interaction `json:"interactions,omitempty"`
}

// Interaction counts the fan's interactions (replies, mentions, messages)
// with one other account: `{"with": "user-2", "count": 14}`.
type Interaction struct {
	// With is the other account's partner user id.
	With string `json:"with"`
	// Count is 1 or more.
	Count int64 `json:"count"`
}
