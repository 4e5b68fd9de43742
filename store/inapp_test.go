package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

func TestInAppOptOutSuppressesTheNextDeliveryAndOptInLiftsIt(t *testing.T) {
	d := newDesk(t)
	ctx := t.Context()
	must(t, d.s.LinkAccount(ctx, "p", "u-9", d.fan))
	id := d.offer(t, 1, offers.ChannelEmail, "", time.Hour)
	all := []offers.Channel{offers.ChannelSMS, offers.ChannelEmail, offers.ChannelPush}
	out := store.InAppConsent{PartnerID: "p", PartnerUserID: "u-9", Channels: all, Change: store.OptOut,
		Wording: "No more ticket offers", Actor: "partner:p", At: d.now}
	must(t, d.s.SetInAppConsent(ctx, out))
	del := d.delivery(t, id)
	slices.Sort(del.Suppressed)
	if want := []offers.Channel{offers.ChannelEmail, offers.ChannelPush, offers.ChannelSMS}; !slices.Equal(del.Suppressed, want) {
		t.Fatalf("suppressed after in-app opt-out %v; want %v", del.Suppressed, want)
	}
	const entries = `SELECT count(*) FROM consent_ledger WHERE fan_id = $1 AND partner_user_id = 'u-9' AND action = $2
		AND source = 'partner:p:in-app' AND wording = $3 AND recorded_at = $4`
	if n := d.count(t, entries, d.fan, "opt_out", out.Wording, d.now); n != 3 {
		t.Fatalf("%d opt-out ledger entries; want 3 (one per channel)", n)
	}

	in := out
	in.Channels, in.Change, in.Wording, in.At = []offers.Channel{offers.ChannelSMS, offers.ChannelPush}, store.OptIn, "Offers back on", d.now.Add(time.Minute)
	must(t, d.s.SetInAppConsent(ctx, in))
	if del := d.delivery(t, id); !slices.Equal(del.Suppressed, []offers.Channel{offers.ChannelEmail}) {
		t.Fatalf("suppressed after opting back into sms and push %v; want [email]", del.Suppressed)
	}
	if n := d.count(t, entries, d.fan, "opt_in", in.Wording, in.At); n != 2 {
		t.Fatalf("%d opt-in ledger entries; want 2", n)
	}
	out.PartnerUserID = "nobody"
	if err := d.s.SetInAppConsent(ctx, out); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("opt-out of an unlinked account: %v; want ErrNotFound", err)
	}
}
