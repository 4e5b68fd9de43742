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
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/time/rate"

	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/store"
)

// DeliverArgs is the delivery job of one offer.
type DeliverArgs struct {
	OfferID uuid.UUID `json:"offer_id"`
	// Round tells a redelivery (the offer reopened by an undelivered
	// receipt) from the offer's earlier jobs, which uniqueness would
	// otherwise hold it to.
	Round int `json:"round,omitempty"`
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
	// Deliverables reads offers, their delivery contexts and their content at
	// once; offers that do not exist are left out.
	Deliverables(ctx context.Context, offerIDs []uuid.UUID) (map[uuid.UUID]store.Deliverable, error)
	// MarkDeliveredMany and RecordAttempts write the bookkeeping of several
	// deliveries at once (see combiner).
	MarkDeliveredMany(ctx context.Context, ds []store.Delivered) error
	RecordAttempts(ctx context.Context, as []store.Attempt) error
	FinishOffer(ctx context.Context, offerID uuid.UUID, status, reason string) error
	// AbandonOffers fails still-issued offers whose delivery jobs River
	// discarded (see SweepArgs).
	AbandonOffers(ctx context.Context, as []store.Abandoned) (int64, error)
}

// SMSSender sends a text message, and finds one sent earlier whose outcome
// was unknown (a timeout, a 5xx): Twilio has no idempotency key.
type SMSSender interface {
	Send(ctx context.Context, m sms.Message) (sms.Result, error)
	FindSent(ctx context.Context, to string, since time.Time, contains string) (string, bool, error)
}

// EmailSender sends an email, and finds one sent earlier by a custom arg.
type EmailSender interface {
	Send(ctx context.Context, m email.Message) (email.Result, error)
	FindSent(ctx context.Context, customArgKey, value string) (string, bool, error)
}

// Pusher delivers in-app pushes: to an open stream on any replica, or to
// the fan's partners' webhooks.
type Pusher interface {
	Reach(ctx context.Context, fan uuid.UUID) (push.Reach, error)
	Deliver(ctx context.Context, fan, offerID uuid.UUID, event string, data []byte) (id string, ok bool, err error)
	FindSent(ctx context.Context, offerID uuid.UUID, event string) (id string, ok bool, err error)
}

// Config configures a Dispatcher.
type Config struct {
	Pool   *pgxpool.Pool
	Store  Store
	SMS    SMSSender // nil: the channel is unavailable
	Email  EmailSender
	Push   Pusher
	Signer *offers.Signer
	// LinkBase prefixes the token in offer links, e.g. "https://crescendo.example/o/".
	LinkBase string
	// StatusCallback, when set, is where Twilio posts delivery receipts.
	StatusCallback string
	// Workers is how many deliveries run at once; 0 makes an insert-only dispatcher.
	Workers int
	// SMSRate and EmailRate cap messages per second per process (token
	// buckets); 0: no cap. Divide the provider's limit by the replicas.
	SMSRate, EmailRate float64
	// RetryBase is the first retry's delay; each next one doubles, with
	// jitter, up to 10 minutes. It is also how long a send whose outcome is
	// unknown is left before asking the provider whether it went out:
	// Twilio lists a message only once it left its queue, and SendGrid's
	// activity search lags too. Default 30s.
	RetryBase time.Duration
	// RescueAfter is how long a delivery job may run before another worker
	// takes it over (its process died mid-job); default 2 minutes.
	RescueAfter time.Duration
	// SweepInterval is how often the leader ends the offers of delivery jobs
	// River discarded without a worker ending them (see SweepArgs); default
	// a minute.
	SweepInterval time.Duration
	Logger        *slog.Logger
	Clock         func() time.Time

	// Delivered, when set, is told of each delivery as it is recorded: the
	// channel, when the offer was issued and when it was delivered (metrics).
	Delivered func(ch offers.Channel, issuedAt, deliveredAt time.Time)
	// GivenUp, when set, is told how many offers were failed because their
	// delivery was given up, and how: GivenUpRetries or GivenUpDiscarded.
	GivenUp func(how string, offers int64)
}

// How a delivery was given up, as GivenUp is told.
const (
	// GivenUpRetries: the job's last attempt failed.
	GivenUpRetries = "retries"
	// GivenUpDiscarded: the sweep found the job discarded, no worker having
	// ended it.
	GivenUpDiscarded = "discarded"
)

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
	cfg.RetryBase = cmp.Or(cfg.RetryBase, 30*time.Second)
	cfg.RescueAfter = cmp.Or(cfg.RescueAfter, 2*time.Minute)
	rcfg := &river.Config{Logger: logger, RetryPolicy: backoff{base: cfg.RetryBase, cap: 10 * time.Minute}}
	if cfg.Workers > 0 {
		workers := river.NewWorkers()
		w := &worker{cfg: cfg, logger: logger, smsLimit: limiter(cfg.SMSRate), emailLimit: limiter(cfg.EmailRate),
			loads:     newCombiner(256, combineLanes, loadDeliverables(cfg.Store)),
			attempts:  newCombiner(256, combineLanes, writeOnly(cfg.Store.RecordAttempts)),
			delivered: newCombiner(256, combineLanes, writeOnly(cfg.Store.MarkDeliveredMany))}
		river.AddWorker(workers, w)
		river.AddWorker(workers, &sweeper{store: cfg.Store, givenUp: cfg.GivenUp, logger: logger})
		rcfg.Workers = workers
		rcfg.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(
			river.PeriodicInterval(cmp.Or(cfg.SweepInterval, time.Minute)),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
			&river.PeriodicJobOpts{ID: SweepArgs{}.Kind(), RunOnStart: true})}
		// A job whose process died is taken over after RescueAfter; the
		// attempt it left unresolved is looked up before anything is resent.
		rcfg.JobTimeout = cfg.RescueAfter / 2
		rcfg.RescueStuckJobsAfter = cfg.RescueAfter
		rcfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		// Offers are time-limited: poll quickly when notifications are missed.
		rcfg.FetchPollInterval = 200 * time.Millisecond
		// Under load a fetch every 20ms (River's default cooldown is 100ms)
		// left workers idle between fetches: at 5ms the same workers deliver
		// about a tenth more and a queued offer waits less. An idle queue is
		// still woken by insert notifications, not by fetching more often.
		rcfg.FetchCooldown = 5 * time.Millisecond
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

// RedeliverTx queues the deliveries of offers a failure receipt reopened,
// inside the transaction that reopened them (store.RedeliverFunc).
func (d *Dispatcher) RedeliverTx(ctx context.Context, tx pgx.Tx, rs []store.Redelivery) error {
	params := make([]river.InsertManyParams, len(rs))
	for i, r := range rs {
		params[i] = river.InsertManyParams{Args: DeliverArgs{OfferID: r.OfferID, Round: r.Round}}
	}
	if _, err := d.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("inserting redelivery jobs: %w", err)
	}
	return nil
}

// Start starts working jobs; it does nothing for an insert-only dispatcher.
func (d *Dispatcher) Start(ctx context.Context) error {
	if !d.working {
		return nil
	}
	// River treats the end of Start's context as a hard stop that cancels the
	// deliveries in flight; shutdown goes through Stop instead, which lets
	// them finish (a send cut off midway is an unknown outcome to look up).
	if err := d.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting delivery workers: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running deliveries to finish or ctx to end.
func (d *Dispatcher) Stop(ctx context.Context) error {
	if !d.working {
		return nil
	}
	err := d.client.Stop(ctx)
	if err == nil {
		return nil
	}
	// Past the deadline, cancel what still runs so the process can exit: a
	// cancelled send is recorded as unknown and looked up before any resend.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if cerr := d.client.StopAndCancel(cctx); cerr != nil {
		return fmt.Errorf("cancelling delivery workers after %w: %w", err, cerr)
	}
	return fmt.Errorf("stopping delivery workers: %w (running deliveries cancelled)", err)
}

type worker struct {
	river.WorkerDefaults[DeliverArgs]
	cfg                  Config
	logger               *slog.Logger
	smsLimit, emailLimit *rate.Limiter
	loads                *combiner[uuid.UUID, loaded]
	attempts             *combiner[store.Attempt, struct{}]
	delivered            *combiner[store.Delivered, struct{}]
}

// combineLanes is how many grouped reads or writes of each kind may be in
// flight: with one, the database idles while a batch travels to and fro.
const combineLanes = 2

// loaded is one offer's Deliverable, found or not.
type loaded struct {
	d     store.Deliverable
	found bool
}

// loadDeliverables reads offers for the workers waiting on them at once.
func loadDeliverables(s Store) func(context.Context, []uuid.UUID) ([]loaded, error) {
	return func(ctx context.Context, ids []uuid.UUID) ([]loaded, error) {
		all, err := s.Deliverables(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]loaded, len(ids))
		for i, id := range ids {
			out[i].d, out[i].found = all[id]
		}
		return out, nil
	}
}

func (w *worker) deliverable(ctx context.Context, id uuid.UUID) (store.Deliverable, error) {
	l, err := w.loads.do(ctx, id)
	if err == nil && !l.found {
		err = fmt.Errorf("offer %s: %w", id, store.ErrNotFound)
	}
	return l.d, err
}

func (w *worker) recordAttempt(ctx context.Context, a store.Attempt) error {
	_, err := w.attempts.do(ctx, a)
	return err
}

func (w *worker) markDelivered(ctx context.Context, a store.Attempt, at time.Time) error {
	_, err := w.delivered.do(ctx, store.Delivered{Attempt: a, At: at})
	return err
}

func limiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/10)))
}

// backoff retries after base, then twice as long each time up to cap, with
// jitter so that a provider outage does not end in a synchronized stampede.
type backoff struct{ base, cap time.Duration }

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := min(b.cap, b.base<<min(max(job.Attempt-1, 0), 20))
	return time.Now().Add(d/2 + rand.N(d/2+1))
}

// Marketing texts go out only between 08:00 and 21:00 in the recipient's
// zone, whatever a rule allows (TCPA and its kin).
const smsFrom, smsUntil = 8, 21

// smsHours reports whether SMS may go out at now in zone, and if not, when.
func smsHours(now time.Time, name string) (bool, time.Time) {
	loc := zone(name)
	l := now.In(loc)
	if l.Hour() >= smsFrom && l.Hour() < smsUntil {
		return true, time.Time{}
	}
	day := l.Day()
	if l.Hour() >= smsUntil {
		day++
	}
	return false, time.Date(l.Year(), l.Month(), day, smsFrom, 0, 0, 0, loc)
}

// Work delivers one offer over the first channel that takes it, once.
//
// River discards a job whose last attempt fails, so an error on that attempt
// (a provider look-up or the database failing, not only a send) ends the
// offer as failed with the error as its reason: an offer never stays
// "issued" with nothing left to deliver it. Jobs River discards without
// running them (a process died during the last attempt) are the sweeper's.
func (w *worker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	err := w.work(ctx, job)
	if err == nil || job.Attempt < job.MaxAttempts || isRiverControl(err) {
		return err
	}
	// The attempt's own context may be what ended it (the job timeout).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Only in the job's own round: a receipt may have reopened the offer
	// for a later round, whose delivery is another job's.
	n, ferr := w.cfg.Store.AbandonOffers(fctx, []store.Abandoned{{OfferID: job.Args.OfferID, Round: job.Args.Round,
		Reason: fmt.Sprintf("retries exhausted after %d attempts: %v", job.Attempt, err)}})
	if ferr != nil {
		return fmt.Errorf("%w (ending the offer: %w)", err, ferr)
	}
	if n > 0 {
		if w.cfg.GivenUp != nil {
			w.cfg.GivenUp(GivenUpRetries, n)
		}
		w.logger.WarnContext(ctx, "offer failed: retries exhausted", slog.String("offer_id", job.Args.OfferID.String()),
			slog.Int("attempt", job.Attempt), slog.Any("error", err))
	}
	return nil
}

// isRiverControl reports whether err tells River to snooze or cancel the
// job rather than that the attempt failed.
func isRiverControl(err error) bool {
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	return errors.As(err, &snooze) || errors.As(err, &cancel)
}

// work is one delivery attempt.
//
// An earlier attempt whose outcome is unknown (a timeout, a 5xx, or a worker
// that died mid-call) is resolved first by asking the provider whether the
// message exists: only if it does not is anything sent again. A permanent
// refusal moves on to the next channel; a transient one is retried with
// backoff (or after the provider's Retry-After), from the channels not yet
// refused.
func (w *worker) work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	id := job.Args.OfferID
	all, err := w.deliverable(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // erased since it was issued
	}
	if err != nil {
		return err
	}
	d, dc := all.Delivery, all.Context
	if d.Status != store.OfferIssued {
		return nil
	}
	now := w.cfg.Clock()
	if !now.Before(d.ExpiresAt) {
		return w.cfg.Store.FinishOffer(ctx, id, store.OfferExpired, "expired before delivery")
	}
	token := w.cfg.Signer.Token(d.OfferID, d.ExpiresAt)
	if delivered, err := w.resolve(ctx, d, dc, token); err != nil || delivered {
		return err
	}
	channels, err := w.channels(ctx, d)
	if err != nil {
		return err
	}
	if len(channels) == 0 {
		return w.cfg.Store.FinishOffer(ctx, id, store.OfferFailed, "no reachable channel")
	}
	msg := w.message(d, all.Content, dc, token, now, channels)
	var reasons []string
	var smsAt time.Time // when SMS, held back by the hours, may go
	for _, ch := range channels {
		if ch == offers.ChannelSMS {
			if ok, next := smsHours(now, dc.TimeZone); !ok {
				smsAt = next
				continue
			}
		}
		if err := w.recordAttempt(ctx, store.Attempt{OfferID: id, Channel: ch, Outcome: store.AttemptSending}); err != nil {
			return err
		}
		providerID, err := w.send(ctx, ch, d, msg)
		if err == nil {
			at := w.cfg.Clock()
			err := w.markDelivered(ctx, store.Attempt{OfferID: id, Channel: ch, ProviderID: providerID}, at)
			if err == nil && w.cfg.Delivered != nil {
				w.cfg.Delivered(ch, d.IssuedAt, at)
			}
			if err == nil {
				w.logger.InfoContext(ctx, "offer delivered", slog.String("offer_id", id.String()), slog.String("channel", string(ch)))
			}
			return err
		}
		outcome := "error"
		switch {
		case isPermanent(err):
			outcome = "failed"
		case isUnknown(err):
			outcome = store.AttemptUnknown
		}
		if rerr := w.recordAttempt(ctx, store.Attempt{OfferID: id, Channel: ch, Outcome: outcome, Detail: err.Error()}); rerr != nil {
			return rerr
		}
		if outcome == "failed" {
			reasons = append(reasons, string(ch)+": "+err.Error())
			continue
		}
		w.logger.WarnContext(ctx, "delivery attempt failed; will retry", slog.String("offer_id", id.String()),
			slog.String("channel", string(ch)), slog.String("outcome", outcome), slog.Int("attempt", job.Attempt), slog.Any("error", err))
		if after := retryAfter(err); after > 0 && outcome == "error" {
			// Rate limited: the provider said when; waiting costs no attempt.
			return river.JobSnooze(after + rand.N(after/10+1))
		}
		return fmt.Errorf("delivering offer over %s (%s): %w", ch, outcome, err)
	}
	if !smsAt.IsZero() {
		if smsAt.Before(d.ExpiresAt) {
			return river.JobSnooze(smsAt.Sub(now))
		}
		reasons = append(reasons, "sms: outside 08:00-21:00 in the fan's zone until the offer ends")
	}
	return w.cfg.Store.FinishOffer(ctx, id, store.OfferFailed, fmt.Sprint("every channel refused: ", reasons))
}

// resolve asks the providers about the offer's unresolved attempts, oldest
// channel first. It reports whether one of them went out, recording the
// delivery; any it has no trace of is closed so that it may be sent again.
func (w *worker) resolve(ctx context.Context, d store.Delivery, dc store.DeliveryContext, token string) (bool, error) {
	for _, ch := range d.Channels {
		since, open := dc.Open[ch]
		if !open {
			continue
		}
		var providerID string
		var found bool
		var err error
		switch {
		case ch == offers.ChannelSMS && w.cfg.SMS != nil:
			// Twilio filters by send date: start well before the first attempt.
			providerID, found, err = w.cfg.SMS.FindSent(ctx, d.Phone, since.Add(-10*time.Minute), token)
		case ch == offers.ChannelEmail && w.cfg.Email != nil:
			providerID, found, err = w.cfg.Email.FindSent(ctx, "offer_id", d.OfferID.String())
		case ch == offers.ChannelPush:
			providerID, found, err = w.cfg.Push.FindSent(ctx, d.OfferID, "offer")
		}
		if err != nil {
			return false, fmt.Errorf("asking %s whether an earlier attempt went out: %w", ch, err)
		}
		if found {
			err := w.markDelivered(ctx, store.Attempt{OfferID: d.OfferID, Channel: ch, ProviderID: providerID,
				Detail: "found at the provider after an unknown outcome"}, w.cfg.Clock())
			return err == nil, err
		}
		if err := w.recordAttempt(ctx, store.Attempt{OfferID: d.OfferID, Channel: ch, Outcome: store.AttemptNotFound}); err != nil {
			return false, err
		}
	}
	return false, nil
}

func isUnknown(err error) bool {
	return errors.Is(err, sms.ErrOutcomeUnknown) || errors.Is(err, email.ErrOutcomeUnknown)
}

func retryAfter(err error) time.Duration {
	var se *sms.ProviderError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	var ee *email.ProviderError
	if errors.As(err, &ee) {
		return ee.RetryAfter
	}
	return 0
}

// channels orders the channels to try: in-app first while the fan has a stream
// open, then the rule's order, skipping what cannot reach the fan or already
// refused this offer for good.
func (w *worker) channels(ctx context.Context, d store.Delivery) ([]offers.Channel, error) {
	refused := make(map[offers.Channel]bool, len(d.Refused)+len(d.Suppressed))
	for _, c := range d.Refused {
		refused[c] = true
	}
	for _, c := range d.Suppressed { // opted out, bounced: never sent to
		refused[c] = true
	}
	var out []offers.Channel
	var reach push.Reach
	if slices.Contains(d.Channels, offers.ChannelPush) && !refused[offers.ChannelPush] {
		var err error
		if reach, err = w.cfg.Push.Reach(ctx, d.FanID); err != nil {
			return nil, fmt.Errorf("checking whether the fan is in the app: %w", err)
		}
	}
	for _, c := range d.Channels {
		if c == offers.ChannelPush && reach.Stream && !refused[c] {
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
		case c == offers.ChannelPush && reach.Webhook && !reach.Stream:
		default:
			continue
		}
		out = append(out, c)
	}
	return out, nil
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
	if err := m.refusal(ch); err != nil {
		return "", err // the rule's templates cannot make this channel's message: permanent, next channel
	}
	switch ch {
	case offers.ChannelSMS:
		if err := w.smsLimit.Wait(ctx); err != nil {
			return "", err
		}
		// Twilio drops a message still queued after its validity period: an offer
		// must not arrive after it ended.
		validity := min(d.ExpiresAt.Sub(w.cfg.Clock()), sms.MaxValidityPeriod)
		res, err := w.cfg.SMS.Send(ctx, sms.Message{To: d.Phone, Body: m.sms, ValidityPeriod: validity, StatusCallback: w.cfg.StatusCallback})
		return res.ProviderID, err
	case offers.ChannelEmail:
		if err := w.emailLimit.Wait(ctx); err != nil {
			return "", err
		}
		res, err := w.cfg.Email.Send(ctx, email.Message{
			ToEmail: d.Email, ToName: d.FanName, Subject: m.subject, Text: m.text, HTML: m.html, Headers: m.headers,
			CustomArgs: map[string]string{"offer_id": d.OfferID.String()},
		})
		return res.ProviderID, err
	case offers.ChannelPush:
		id, ok, err := w.cfg.Push.Deliver(ctx, d.FanID, d.OfferID, "offer", m.push)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errPushGone{}
		}
		return id, nil
	}
	return "", fmt.Errorf("unknown channel %q", ch)
}

// ProviderClient is the HTTP client for the providers' APIs: one connection
// per worker kept alive to each provider (the default transport keeps two,
// so 32 workers would open and close connections on every send).
func ProviderClient(timeout time.Duration, workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(workers, 2)
	return &http.Client{Timeout: timeout, Transport: t}
}
