package notifiers

import (
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// message is an offer rendered for every channel. Per-rule templates (F19)
// replace these defaults later; the data they need is already here.
type message struct {
	sms     string
	subject string
	text    string
	html    string
	push    []byte
}

var emailHTML = template.Must(template.New("email").Parse(`<!doctype html>
<html><body>
<p>Hi {{.Name}},</p>
<p>You are one of {{.Performer}}'s most devoted listeners, so here is something for <strong>{{.Show}}</strong>: {{.Perks}}.</p>
<p><a href="{{.Link}}">Claim your offer</a> before {{.Expires}}.</p>
</body></html>`))

func render(d store.Delivery, link string, now time.Time) message {
	texts := make([]string, len(d.Perks))
	for i, p := range d.Perks {
		texts[i] = offers.PerkText(p)
	}
	perks := strings.Join(texts, ", ")
	if d.PresaleCode != "" {
		perks += " (presale code " + d.PresaleCode + ")"
	}
	expires := d.ExpiresAt.UTC().Format("Jan 2 15:04 MST")
	name := firstName(d.FanName)
	var html strings.Builder
	_ = emailHTML.Execute(&html, map[string]string{
		"Name": name, "Performer": d.PerformerName, "Show": d.ShowName, "Perks": perks, "Link": link, "Expires": expires,
	})
	pushBody, _ := json.Marshal(map[string]any{
		"offer_id":     d.OfferID.String(),
		"title":        fmt.Sprintf("%s: %s", d.PerformerName, d.ShowName),
		"body":         fmt.Sprintf("Unlocked for you: %s. Ends %s.", perks, expires),
		"perks":        d.Perks,
		"tier":         d.Tier,
		"presale_code": d.PresaleCode,
		"expires_at":   d.ExpiresAt.UTC().Format(time.RFC3339),
		"link":         link,
		"sent_at":      now.UTC().Format(time.RFC3339Nano),
	})
	return message{
		sms:     fmt.Sprintf("%s: %s for %s. Ends %s. %s", d.PerformerName, perks, d.ShowName, expires, link),
		subject: fmt.Sprintf("%s, an offer for %s", name, d.ShowName),
		text: fmt.Sprintf("Hi %s,\n\nYou are one of %s's most devoted listeners, so here is something for %s: %s.\n\nClaim it before %s: %s\n",
			name, d.PerformerName, d.ShowName, perks, expires, link),
		html: html.String(),
		push: pushBody,
	}
}

func firstName(full string) string {
	if f := strings.Fields(full); len(f) > 0 {
		return f[0]
	}
	return "there"
}
