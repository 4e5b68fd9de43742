// Package notifiers delivers issued offers. Delivery jobs sit in a durable
// Postgres queue (River), inserted in the same transaction as the offers they
// deliver; workers in any replica pick them up, choose a channel, render the
// message and send it through Twilio, SendGrid or an in-app push stream.
package notifiers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// DeliverArgs is the delivery job of one offer.
type DeliverArgs struct {
	OfferID uuid.UUID `json:"offer_id"`
}

// Kind names the job kind in the queue.
func (DeliverArgs) Kind() string { return "deliver_offer" }

// InsertOpts makes the job unique per offer: queueing it twice delivers once.
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: maxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

const maxAttempts = 8

// Store is what delivery needs from durable storage.
type Store interface {
	Delivery(ctx context.Context, offerID uuid.UUID) (store.Delivery, error)
	MarkDelivered(ctx context.Context, a store.Attempt, at time.Time) (bool, error)
	RecordAttempt(ctx context.Context, a store.Attempt) error
	FinishOffer(ctx context.Context, offerID uuid.UUID, status, reason string) error
}

// SMSSender sends a text message.
type SMSSender interface {
	Send(ctx context.Context, m sms.Message) (sms.Result, error)
}

// EmailSender sends an email.
type EmailSender interface {
	Send(ctx context.Context, m email.Message) (email.Result, error)
}

// Config configures a Dispatcher.
type Config struct {
	Pool   *pgxpool.Pool
	Store  Store
	SMS    SMSSender // nil: the channel is unavailable
	Email  EmailSender
	Push   *push.Hub
	Signer *offers.Signer
	// LinkBase prefixes the token in offer links, e.g. "https://crescendo.example/o/".
	LinkBase string
	// Workers is how many deliveries run at once; 0 makes an insert-only dispatcher.
	Workers int
	Logger  *slog.Logger
	Clock   func() time.Time
}

// Dispatcher queues and works delivery jobs.
type Dispatcher struct {
	client  *river.Client[pgx.Tx]
	working bool
}

// New validates cfg and returns a dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	var errs []error
	if cfg.Pool == nil {
		errs = append(errs, errors.New("Pool: required"))
	}
	if cfg.Workers > 0 {
		if cfg.Store == nil {
			errs = append(errs, errors.New("Store: required to work jobs"))
		}
		if cfg.Signer == nil {
			errs = append(errs, errors.New("Signer: required to work jobs"))
		}
		if cfg.Push == nil {
			errs = append(errs, errors.New("Push: required to work jobs"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("notifiers: %w", err)
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With(slog.String("component", "notifier"))
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	rcfg := &river.Config{Logger: logger}
	if cfg.Workers > 0 {
		workers := river.NewWorkers()
		river.AddWorker(workers, &worker{cfg: cfg, logger: logger})
		rcfg.Workers = workers
		rcfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		// Offers are time-limited: poll quickly when notifications are missed.
		rcfg.FetchPollInterval = 200 * time.Millisecond
		rcfg.FetchCooldown = 20 * time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), rcfg)
	if err != nil {
		return nil, fmt.Errorf("creating job queue client: %w", err)
	}
	return &Dispatcher{client: client, working: cfg.Workers > 0}, nil
}

// EnqueueTx queues delivery of the given offers inside tx, each no sooner
// than its NotBefore (an offer held through the fan's quiet hours).
func (d *Dispatcher) EnqueueTx(ctx context.Context, tx pgx.Tx, jobs []store.DeliveryJob) error {
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		params[i] = river.InsertManyParams{Args: DeliverArgs{OfferID: j.OfferID}}
		if !j.NotBefore.IsZero() {
			params[i].InsertOpts = &river.InsertOpts{ScheduledAt: j.NotBefore}
		}
	}
	if _, err := d.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("inserting delivery jobs: %w", err)
	}
	return nil
}

// Start starts working jobs; it does nothing for an insert-only dispatcher.
func (d *Dispatcher) Start(ctx context.Context) error {
	if !d.working {
		return nil
	}
	if err := d.client.Start(ctx); err != nil {
		return fmt.Errorf("starting delivery workers: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running deliveries to finish or ctx to end.
func (d *Dispatcher) Stop(ctx context.Context) error {
	if !d.working {
		return nil
	}
	if err := d.client.Stop(ctx); err != nil {
		return fmt.Errorf("stopping delivery workers: %w", err)
	}
	return nil
}

type worker struct {
	river.WorkerDefaults[DeliverArgs]
	cfg    Config
	logger *slog.Logger
}

// Work delivers one offer over the first channel that takes it. A permanent
// refusal moves on to the next channel; a transient one is retried by the queue
// with backoff, starting again from the channels not yet refused.
func (w *worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	id := job.Args.OfferID
	d, err := w.cfg.Store.Delivery(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // erased since it was issued
	}
	if err != nil {
		return err
	}
	if d.Status != store.OfferIssued {
		return nil
	}
	now := w.cfg.Clock()
	if !now.Before(d.ExpiresAt) {
		return w.cfg.Store.FinishOffer(ctx, id, store.OfferExpired, "expired before delivery")
	}
	channels := w.channels(d)
	if len(channels) == 0 {
		return w.cfg.Store.FinishOffer(ctx, id, store.OfferFailed, "no reachable channel")
	}
	msg := render(d, w.cfg.LinkBase+w.cfg.Signer.Token(d.OfferID, d.ExpiresAt), now)
	var reasons []string
	for _, ch := range channels {
		providerID, err := w.send(ctx, ch, d, msg)
		if err == nil {
			_, err := w.cfg.Store.MarkDelivered(ctx, store.Attempt{OfferID: id, Channel: ch, ProviderID: providerID}, w.cfg.Clock())
			if err == nil {
				w.logger.InfoContext(ctx, "offer delivered", slog.String("offer_id", id.String()), slog.String("channel", string(ch)))
			}
			return err
		}
		permanent := isPermanent(err)
		outcome := "error"
		if permanent {
			outcome = "failed"
		}
		if rerr := w.cfg.Store.RecordAttempt(ctx, store.Attempt{OfferID: id, Channel: ch, Outcome: outcome, Detail: err.Error()}); rerr != nil {
			return rerr
		}
		if !permanent {
			w.logger.WarnContext(ctx, "delivery attempt failed; will retry", slog.String("offer_id", id.String()),
				slog.String("channel", string(ch)), slog.Int("attempt", job.Attempt), slog.Any("error", err))
			if job.Attempt >= job.MaxAttempts {
				return w.cfg.Store.FinishOffer(ctx, id, store.OfferFailed, "retries exhausted on "+string(ch)+": "+err.Error())
			}
			return fmt.Errorf("delivering offer over %s: %w", ch, err)
		}
		reasons = append(reasons, string(ch)+": "+err.Error())
	}
	return w.cfg.Store.FinishOffer(ctx, id, store.OfferFailed, fmt.Sprint("every channel refused: ", reasons))
}

// channels orders the channels to try: in-app first while the fan has a stream
// open, then the rule's order, skipping what cannot reach the fan or already
// refused this offer for good.
func (w *worker) channels(d store.Delivery) []offers.Channel {
	refused := make(map[offers.Channel]bool, len(d.Refused))
	for _, c := range d.Refused {
		refused[c] = true
	}
	var out []offers.Channel
	online := w.cfg.Push.Online(d.FanID)
	for _, c := range d.Channels {
		if c == offers.ChannelPush && online && !refused[c] {
			out = append(out, c)
		}
	}
	for _, c := range d.Channels {
		if refused[c] {
			continue
		}
		switch {
		case c == offers.ChannelSMS && d.Phone != "" && w.cfg.SMS != nil:
		case c == offers.ChannelEmail && d.Email != "" && w.cfg.Email != nil:
		default:
			continue
		}
		out = append(out, c)
	}
	return out
}

// isPermanent reports whether retrying the same channel cannot help: the
// provider refused for good, or the message itself is invalid.
func isPermanent(err error) bool {
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) {
		return perm.Permanent()
	}
	return errors.Is(err, sms.ErrInvalidMessage) || errors.Is(err, email.ErrInvalidMessage)
}

// errPushGone is a permanent refusal: the fan closed the app between choice and send.
type errPushGone struct{}

func (errPushGone) Error() string   { return "no open in-app stream took the push" }
func (errPushGone) Permanent() bool { return true }

func (w *worker) send(ctx context.Context, ch offers.Channel, d store.Delivery, m message) (string, error) {
	switch ch {
	case offers.ChannelSMS:
		// Twilio drops a message still queued after its validity period: an offer
		// must not arrive after it ended.
		validity := min(d.ExpiresAt.Sub(w.cfg.Clock()), sms.MaxValidityPeriod)
		res, err := w.cfg.SMS.Send(ctx, sms.Message{To: d.Phone, Body: m.sms, ValidityPeriod: validity})
		return res.ProviderID, err
	case offers.ChannelEmail:
		res, err := w.cfg.Email.Send(ctx, email.Message{
			ToEmail: d.Email, ToName: d.FanName, Subject: m.subject, Text: m.text, HTML: m.html,
			CustomArgs: map[string]string{"offer_id": d.OfferID.String()},
		})
		return res.ProviderID, err
	case offers.ChannelPush:
		if w.cfg.Push.Send(d.FanID, push.Message{ID: d.OfferID.String(), Event: "offer", Data: m.push}) == 0 {
			return "", errPushGone{}
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown channel %q", ch)
}
