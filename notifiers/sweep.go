package notifiers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/crescendo-hq/crescendo/store"
)

// SweepArgs is the periodic job that ends the offers whose delivery jobs
// River discarded without a worker ending them. River's rescuer discards a
// job that was running its last attempt when its process died, and a worker
// whose own bookkeeping failed on the last attempt leaves one too; either
// way the offer would stay "issued" with nothing left to deliver it.
type SweepArgs struct{}

// Kind names the job kind in the queue.
func (SweepArgs) Kind() string { return "sweep_deliveries" }

// InsertOpts keeps one sweep queued at a time: replicas' leaders in turn
// never stack them up.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

// sweepLookback is how far back each sweep looks at discarded jobs: many
// sweeps cover each one, so a sweep that failed or a leader that changed
// skips none, and River keeps discarded jobs for a week. It is measured on
// the wall clock, as River stamps jobs, not on an injected one.
const sweepLookback = 24 * time.Hour

// sweepPage is how many discarded jobs a sweep reads at once.
const sweepPage = 500

type sweeper struct {
	river.WorkerDefaults[SweepArgs]
	store   Store // AbandonOffers only
	givenUp func(how string, offers int64)
	logger  *slog.Logger
}

// Work fails the still-issued offers of delivery jobs discarded within the
// lookback, each in the round its job delivered, with the job's last error.
func (s *sweeper) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	params := river.NewJobListParams().Kinds(DeliverArgs{}.Kind()).States(rivertype.JobStateDiscarded).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderAsc).
		Where("finalized_at > @since", river.NamedArgs{"since": time.Now().Add(-sweepLookback)}).
		First(sweepPage)
	var ended int64
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return fmt.Errorf("listing discarded delivery jobs: %w", err)
		}
		as := make([]store.Abandoned, 0, len(res.Jobs))
		for _, j := range res.Jobs {
			a, err := abandoned(j)
			if err != nil {
				s.logger.WarnContext(ctx, "skipping a discarded job", slog.Int64("job_id", j.ID), slog.Any("error", err))
				continue
			}
			as = append(as, a)
		}
		n, err := s.store.AbandonOffers(ctx, as)
		if err != nil {
			return err
		}
		ended += n
		if n > 0 && s.givenUp != nil {
			s.givenUp(GivenUpDiscarded, n)
		}
		if len(res.Jobs) < sweepPage {
			break
		}
		params = params.After(res.LastCursor)
	}
	if ended > 0 {
		s.logger.WarnContext(ctx, "offers failed: their delivery jobs were discarded", slog.Int64("offers", ended))
	}
	return nil
}

// abandoned reads the offer, round and reason of a discarded delivery job.
func abandoned(j *rivertype.JobRow) (store.Abandoned, error) {
	var args DeliverArgs
	if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
		return store.Abandoned{}, fmt.Errorf("decoding the job's arguments: %w", err)
	}
	last := "no error recorded"
	if n := len(j.Errors); n > 0 {
		last = j.Errors[n-1].Error
	}
	return store.Abandoned{OfferID: args.OfferID, Round: args.Round,
		Reason: fmt.Sprintf("delivery given up after %d attempts: %s", j.Attempt, last)}, nil
}
