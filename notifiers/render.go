package notifiers

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// message is an offer rendered for every channel, from its rule's templates
// (F19) or the built-in ones.
type message struct {
	sms     string
	subject string
	text    string
	html    string
	push    []byte
	// headers are the email's extra headers: List-Unsubscribe and
	// List-Unsubscribe-Post (RFC 8058) when it has an unsubscribe link.
	headers map[string]string
	// refused says, by channel, why its message could not be made (a text
	// over the rule's segment limit); such a channel refuses the offer for
	// good and the next one is tried.
	refused map[offers.Channel]error
}

// refusal returns why ch's message could not be made, nil when it was.
func (m message) refusal(ch offers.Channel) error { return m.refused[ch] }

// errUnrenderable is a message its rule's templates could not make for this
// offer: a permanent refusal of its channel.
type errUnrenderable struct{ err error }

func (e errUnrenderable) Error() string { return e.err.Error() }
func (e errUnrenderable) Unwrap() error { return e.err }
func (errUnrenderable) Permanent() bool { return true }

// links are the URLs an offer's messages carry.
type links struct {
	// offer is the offer's link and token its last part.
	offer, token string
	// unsubscribe is the email's one-click unsubscribe link; "" leaves it
	// and the List-Unsubscribe headers out.
	unsubscribe string
	// unsubscribeMailto, when set, is an address whose inbox turns mail into
	// unsubscribes, offered in List-Unsubscribe after the link.
	unsubscribeMailto string
}

// Formats of the dates messages carry, in the fan's zone.
const (
	expiresFormat  = "Jan 2 15:04 MST"
	showDateFormat = "Mon 2 Jan 2006"
)

// renderOffer renders an offer's messages with its rule's templates (nil:
// the built-in ones); dates are said in loc, the fan's zone. Only the
// channels in chs are rendered (nil: all): a delivery sends one, and the
// HTML email alone costs more than a text.
func renderOffer(d store.Delivery, c store.OfferContent, l links, loc *time.Location, now time.Time, chs []offers.Channel) message {
	want := func(ch offers.Channel) bool { return chs == nil || slices.Contains(chs, ch) }
	if loc == nil {
		loc = time.UTC
	}
	data := offers.MessageData{
		FanName: firstName(d.FanName), Performer: d.PerformerName, Show: d.ShowName, Perks: offers.PerksText(d.Perks),
		Tier: d.Tier, Link: l.offer, Token: l.token, Expires: d.ExpiresAt.In(loc).Format(expiresFormat),
		PresaleCode: d.PresaleCode, UnsubscribeLink: l.unsubscribe,
	}
	if !c.ShowStartsAt.IsZero() {
		data.ShowDate = c.ShowStartsAt.In(loc).Format(showDateFormat)
	}
	t := c.Templates
	m := message{refused: map[offers.Channel]error{}}
	if want(offers.ChannelSMS) {
		var err error
		if m.sms, err = t.RenderSMS(data); err != nil {
			m.refused[offers.ChannelSMS] = errUnrenderable{err}
		}
	}
	if want(offers.ChannelEmail) {
		m.renderEmail(t, data, l)
	}
	if want(offers.ChannelPush) {
		m.renderPush(t, data, d, l, now)
	}
	return m
}

func (m *message) renderEmail(t *offers.Templates, data offers.MessageData, l links) {
	var err error
	if m.subject, m.text, m.html, err = t.RenderEmail(data); err != nil {
		m.refused[offers.ChannelEmail] = errUnrenderable{err}
	}
	if l.unsubscribe != "" {
		list := "<" + l.unsubscribe + ">"
		if l.unsubscribeMailto != "" {
			list += ", <mailto:" + l.unsubscribeMailto + "?subject=" + url.PathEscape("unsubscribe "+unsubscribeToken(l.unsubscribe)) + ">"
		}
		m.headers = map[string]string{
			"List-Unsubscribe":      list,
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}
	}
}

func (m *message) renderPush(t *offers.Templates, data offers.MessageData, d store.Delivery, l links, now time.Time) {
	title, body, deepLink, err := t.RenderPush(data)
	if err != nil {
		m.refused[offers.ChannelPush] = errUnrenderable{err}
	}
	m.push, _ = json.Marshal(map[string]any{
		"offer_id":     d.OfferID.String(),
		"title":        title,
		"body":         body,
		"perks":        d.Perks,
		"tier":         d.Tier,
		"presale_code": d.PresaleCode,
		"expires_at":   d.ExpiresAt.UTC().Format(time.RFC3339),
		"link":         l.offer,
		"deep_link":    deepLink,
		"sent_at":      now.UTC().Format(time.RFC3339Nano),
	})
}

// message renders the offer's messages for delivery: its rule's templates,
// dates in the fan's zone, the offer link made of token, and for email the
// one-click unsubscribe link of the fan's address.
// Only the channels in chs are rendered (nil: all).
func (w *worker) message(d store.Delivery, content store.OfferContent, dc store.DeliveryContext, token string, now time.Time, chs []offers.Channel) message {
	l := links{offer: w.cfg.LinkBase + token, token: token}
	if base := unsubscribeBase(w.cfg.LinkBase); base != "" && d.Email != "" {
		l.unsubscribe = base + w.cfg.Signer.UnsubscribeToken(d.Email)
	}
	return renderOffer(d, content, l, zone(dc.TimeZone), now, chs)
}

// zones memoizes time.LoadLocation, which reads and parses the zone's file
// on every call: a cost per message for a few hundred possible names.
var zones sync.Map // name → *time.Location

// zone returns the named zone, UTC when the name is unknown.
func zone(name string) *time.Location {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC // not kept: a bad name must not grow the map
	}
	zones.Store(name, loc)
	return loc
}

// unsubscribeBase is where unsubscribe links start: /u/ beside the offer
// links' /o/ ("https://crescendo.example/o/" → "https://crescendo.example/u/"),
// "" when linkBase is not an absolute URL.
func unsubscribeBase(linkBase string) string {
	u, err := url.Parse(linkBase)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return ""
	}
	return u.ResolveReference(&url.URL{Path: "../u/"}).String()
}

// unsubscribeToken is the last part of an unsubscribe link.
func unsubscribeToken(link string) string { return link[strings.LastIndex(link, "/")+1:] }

func firstName(full string) string {
	if f := strings.Fields(full); len(f) > 0 {
		return f[0]
	}
	return "there"
}
