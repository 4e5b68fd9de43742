package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// queueOffers issues n offers of a rule named id (with its own performer and
// show) to n new fans and queues their delivery jobs in one transaction, as
// the consumer would. contact gives fan i's phone or email; zone is every
// fan's time zone.
func queueOffers(ctx context.Context, t *testing.T, st *store.Store, id string, n int, zone string, channels []offers.Channel, contact func(i int) (phone, email string)) {
	t.Helper()
	now := time.Now().UTC()
	if err := st.PutPerformer(ctx, id, "Performer "+id); err != nil {
		t.Fatal(err)
	}
	show := id + "-show"
	if err := st.PutShow(ctx, store.Show{ID: show, PerformerID: id, Name: id + " live",
		StartsAt: now.Add(90 * 24 * time.Hour), VenueName: "Hall", VenueLat: 51.5, VenueLon: -0.1}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutRule(ctx, offers.Rule{ID: id, PerformerID: id, ShowID: show, Lifetime: time.Hour,
		Tiers: []offers.Tier{{Threshold: 1, Perks: []string{"presale"}}}, Channels: channels}); err != nil {
		t.Fatal(err)
	}
	fans := make([]store.BulkFan, n)
	for i := range fans {
		f := store.Fan{ID: uuid.New(), DisplayName: "Fan", TimeZone: zone}
		f.Phone, f.Email = contact(i)
		fans[i] = store.BulkFan{Fan: f, PartnerUserID: fmt.Sprintf("%s-%05d", id, i)}
	}
	if err := st.BulkLoadFans(ctx, "streamly", fans); err != nil {
		t.Fatal(err)
	}
	queue, err := notifiers.New(notifiers.Config{Pool: st.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		jobs := make([]store.DeliveryJob, len(fans))
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"offers"}, []string{"id", "fan_id", "rule_id", "rule_version", "tier",
			"performer_id", "show_id", "perks", "index_value", "event_id", "partition", "issued_at", "expires_at"},
			pgx.CopyFromSlice(len(fans), func(i int) ([]any, error) {
				oid := uuid.New()
				jobs[i] = store.DeliveryJob{OfferID: oid}
				return []any{pgtype.UUID{Bytes: oid, Valid: true}, pgtype.UUID{Bytes: fans[i].ID, Valid: true}, id, 1, 1,
					id, show, []string{"presale"}, 1.0, fmt.Sprintf("streamly/%s%d", id, i), 0, now, now.Add(time.Hour)}, nil
			}))
		if err != nil {
			return err
		}
		return queue.EnqueueTx(ctx, tx, jobs)
	})
	if err != nil {
		t.Fatal(err)
	}
}
