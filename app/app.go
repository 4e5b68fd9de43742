// Package app wires Crescendo's parts into one running process: the embedded
// broker when no Kafka is configured, the store, the consumer group member, the
// delivery workers, the scheduler and the HTTP API. `serve` and `demo` both
// run an App; main only parses arguments.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/api"
	"github.com/crescendo-hq/crescendo/broker"
	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/console"
	"github.com/crescendo-hq/crescendo/consumers"
	"github.com/crescendo-hq/crescendo/events"
	"github.com/crescendo-hq/crescendo/ingest"
	"github.com/crescendo-hq/crescendo/metrics"
	"github.com/crescendo-hq/crescendo/notifiers"
	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/push"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/offers"
	"github.com/crescendo-hq/crescendo/replay"
	"github.com/crescendo-hq/crescendo/schedules"
	"github.com/crescendo-hq/crescendo/store"
)

// Options are what a caller adds to the settings.
type Options struct {
	Logger *slog.Logger
	// Outbox, when set, is served at GET /dev/outbox.
	Outbox func() any
	// BeforeConsume runs after the store is ready and before the consumer
	// starts (the demo seeds its data here).
	BeforeConsume func(ctx context.Context, s *store.Store) error
	// Group membership timing overrides, for tests that rebalance often; zero
	// takes the settings (KAFKA_SESSION_TIMEOUT and the like).
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration
}

// App is a running Crescendo process.
type App struct {
	settings config.Settings
	logger   *slog.Logger

	Broker     *broker.Broker // nil when KAFKA_BROKERS is set
	Brokers    []string
	Store      *store.Store
	Directory  *store.Directory
	Rules      *store.RuleSet
	Scorers    *store.Scorers
	Consumer   *consumers.Consumer
	Dispatcher *notifiers.Dispatcher
	Scheduler  *schedules.Scheduler
	Push       *push.Hub
	Signer     *offers.Signer
	Replay     *replay.Runner
	Metrics    *metrics.Metrics
	Console    *console.Console
	HTTPAddr   string

	httpServer   *http.Server
	httpCancel   context.CancelFunc
	consumeStop  context.CancelFunc
	refreshStop  context.CancelFunc
	pushStop     context.CancelFunc
	wg           sync.WaitGroup
	consumerDone chan error
	lag          *lagSource
	producer     *producer
	everAssigned atomic.Bool
}

// Start starts every part. On error, whatever started is stopped again.
func Start(ctx context.Context, s config.Settings, opts Options) (a *App, err error) {
	logger := cmp.Or(opts.Logger, slog.Default())
	started := &App{settings: s, logger: logger, consumerDone: make(chan error, 1)}
	a = started
	defer func() {
		if err != nil { // a is nil by now: stop what started through its own pointer
			started.Shutdown(context.WithoutCancel(ctx))
		}
	}()

	if len(s.SigningKeys) == 0 {
		return nil, errors.New("OFFER_SIGNING_KEYS: at least one key is required to sign offer links")
	}
	if a.Signer, err = offers.NewSigner(s.SigningKeyID, s.SigningKeys); err != nil {
		return nil, fmt.Errorf("OFFER_SIGNING_KEYS: %w", err)
	}

	topics := []broker.TopicSpec{{Name: s.Topic, Partitions: int32(s.Partitions)}, {Name: s.DLQTopic, Partitions: 1}}
	if len(s.KafkaBrokers) == 0 {
		a.Broker, err = broker.Start(ctx, broker.Config{
			Addr:    s.EmbeddedAddr,
			DataDir: filepath.Join(s.DataDir, "kafka"),
			Topics:  topics,
			Logger:  logger.With(slog.String("component", "broker")),
		})
		if err != nil {
			return nil, fmt.Errorf("starting embedded broker: %w", err)
		}
		a.Brokers = a.Broker.Addrs()
		logger.InfoContext(ctx, "embedded Kafka-protocol broker started", slog.Any("addrs", a.Brokers))
	} else {
		a.Brokers = s.KafkaBrokers
		if err := ensureTopics(ctx, a.Brokers, topics); err != nil {
			return nil, err
		}
	}

	if a.Store, err = store.Open(ctx, store.Config{URL: s.DatabaseURL, CreateDatabase: s.CreateDatabase, Logger: logger, StateVersion: s.StateVersion}); err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	if opts.BeforeConsume != nil {
		if err := opts.BeforeConsume(ctx, a.Store); err != nil {
			return nil, err
		}
	}
	// In-app pushes go through a Postgres outbox, so any replica's stream
	// delivers them and a reconnecting app resumes where it left off (F16).
	pushKey, err := a.Store.ClusterSecret(ctx, "push-webhook-secrets")
	if err != nil {
		return nil, err
	}
	if a.Push, err = push.New(push.Config{Store: a.Store, SecretKey: pushKey, Logger: logger}); err != nil {
		return nil, err
	}
	pushCtx, pushStop := context.WithCancel(context.WithoutCancel(ctx))
	a.pushStop = pushStop
	a.wg.Add(1)
	go func() { defer a.wg.Done(); _ = a.Push.Run(pushCtx) }()
	if a.Directory, err = a.Store.NewDirectory(ctx); err != nil {
		return nil, err
	}
	if a.Rules, err = a.Store.NewRuleSet(ctx); err != nil {
		return nil, err
	}
	if a.Scorers, err = a.Store.NewScorers(ctx); err != nil {
		return nil, err
	}

	a.Metrics = metrics.New()
	a.Metrics.RegisterOffers(a.Store, 0)
	dcfg := notifiers.Config{
		Pool: a.Store.Pool(), Store: a.Store, Push: a.Push, Signer: a.Signer,
		LinkBase: s.LinkBase, Workers: s.DeliveryWorkers, Logger: logger,
		SMSRate: s.SMSRate, EmailRate: s.EmailRate, RetryBase: s.RetryBase, RescueAfter: s.RescueAfter,
		Delivered: func(ch offers.Channel, issuedAt, at time.Time) { a.Metrics.ObserveDelivery(string(ch), issuedAt, at) },
		GivenUp:   func(how string, n int64) { a.Metrics.DeliveriesGivenUp.WithLabelValues(how).Add(float64(n)) },
	}
	s.PublicBaseURL = cmp.Or(s.PublicBaseURL, "http://"+s.HTTPAddr)
	if s.TwilioToken != "" {
		dcfg.StatusCallback = strings.TrimSuffix(s.PublicBaseURL, "/") + "/v1/webhooks/twilio/status"
	}
	providerHTTP := notifiers.ProviderClient(cmp.Or(s.ProviderTimeout, 10*time.Second), s.DeliveryWorkers)
	if s.TwilioSID != "" {
		client, err := sms.New(sms.Config{AccountSID: s.TwilioSID, AuthToken: s.TwilioToken, From: s.TwilioFrom, BaseURL: s.TwilioBaseURL, HTTPClient: providerHTTP})
		if err != nil {
			return nil, fmt.Errorf("configuring Twilio: %w", err)
		}
		dcfg.SMS = a.Metrics.InstrumentSMS(client)
	}
	if s.SendGridKey != "" {
		client, err := email.New(email.Config{APIKey: s.SendGridKey, FromEmail: s.SendGridFrom, FromName: "Crescendo", BaseURL: s.SendGridBaseURL, HTTPClient: providerHTTP})
		if err != nil {
			return nil, fmt.Errorf("configuring SendGrid: %w", err)
		}
		dcfg.Email = a.Metrics.InstrumentEmail(client)
	}
	if a.Dispatcher, err = notifiers.New(dcfg); err != nil {
		return nil, err
	}
	if err := a.Dispatcher.Start(ctx); err != nil {
		return nil, err
	}

	decoder, err := events.NewDecoder(events.DecoderConfig{})
	if err != nil {
		return nil, err
	}
	routingSecret, err := a.Store.ClusterSecret(ctx, "routing")
	if err != nil {
		return nil, err
	}
	a.Consumer, err = consumers.New(consumers.Config{
		Brokers: a.Brokers, Topic: s.Topic, DLQTopic: s.DLQTopic, GroupID: s.GroupID,
		Partitioner: s.Partitioner, RoutingSecret: routingSecret,
		Decoder: decoder, Directory: a.Directory, Rules: a.Rules, Scorers: a.Scorers, Erasures: a.Directory, Recomputes: a.Directory,
		Checkpointer: a.Metrics.InstrumentCheckpointer(store.Checkpointer{Store: a.Store, Enqueue: a.Dispatcher.EnqueueTx}),
		ObserveRead:  a.observeRead,
		BatchLinger:  s.BatchLinger, SessionGap: s.SessionGap,
		SessionTimeout:    cmp.Or(opts.SessionTimeout, s.SessionTimeout),
		RebalanceTimeout:  cmp.Or(opts.RebalanceTimeout, s.RebalanceTimeout),
		HeartbeatInterval: cmp.Or(opts.HeartbeatInterval, s.HeartbeatInterval),
		Logger:            logger,
	})
	if err != nil {
		return nil, err
	}
	a.lag = newLagSource(a.Brokers, a.Store, s.GroupID, s.Topic)
	a.Metrics.RegisterConsumer(metrics.ConsumerConfig{Consumer: a.Consumer, Lag: a.lag})

	if a.Replay, err = replay.New(replay.Config{
		Brokers: a.Brokers, Topic: s.Topic, Decoder: decoder, Directory: a.Directory, Scorers: a.Scorers,
		Rules: a.Store, Reach: a.Store, SessionGap: s.SessionGap, Logger: logger,
	}); err != nil {
		return nil, err
	}

	ingestKey, err := a.Store.ClusterSecret(ctx, "ingest-secrets")
	if err != nil {
		return nil, err
	}
	if a.producer, err = newProducer(a.Brokers, s.Topic, s.Partitioner); err != nil {
		return nil, err
	}
	ingester, err := ingest.New(ingest.Config{
		Store: a.Store, Producer: a.producer, Decoder: decoder, SealKey: ingestKey,
		Rate: s.IngestRate, ReplayWindow: s.IngestReplayWindow, Logger: logger,
		Observe: func(partner, outcome string, n int) {
			a.Metrics.IngestEvents.WithLabelValues(partner, outcome).Add(float64(n))
		},
	})
	if err != nil {
		return nil, err
	}

	feedback := store.Feedback{Store: a.Store, Redeliver: a.Dispatcher.RedeliverTx}
	jobs := []schedules.Job{{
		Name: "offer-expiry", Spec: s.ExpirySchedule,
		Run: func(ctx context.Context) (int64, error) { return a.Store.ExpireOffers(ctx, time.Now()) },
	}, {
		// Social queues admit their next batch when it is due (F12); each sale keeps its own pace.
		Name: "queue-admission", Spec: "@every 1s",
		Run: func(ctx context.Context) (int64, error) { return a.Store.AdmitDue(ctx, time.Now()) },
	}, {
		// A failure receipt that arrived before the worker recorded its send
		// reopens the offer here instead (F18).
		Name: "undelivered-reopen", Spec: "@every 1m",
		Run: func(ctx context.Context) (int64, error) { return feedback.ReopenUndelivered(ctx, time.Now()) },
	}, {
		// Providers stop retrying webhooks within a day; their dedup keys can go after a week.
		// Pushes are kept for resuming apps; a month covers any offer's life.
		Name: "push-retention", Spec: "@every 1h",
		Run: func(ctx context.Context) (int64, error) {
			return a.Store.DeletePushesBefore(ctx, time.Now().Add(-30*24*time.Hour))
		},
	}, {
		// A partner retries a batch within minutes; a day of keys is plenty.
		Name: "ingest-keys-prune", Spec: "@hourly",
		Run: func(ctx context.Context) (int64, error) {
			return a.Store.PruneIngestRequests(ctx, time.Now().Add(-24*time.Hour))
		},
	}, {
		Name: "webhook-events-prune", Spec: "@daily",
		Run: func(ctx context.Context) (int64, error) {
			return a.Store.PruneWebhookEvents(ctx, time.Now().Add(-7*24*time.Hour))
		},
	}, {
		// F5's scheduled recomputation: each partition's owner folds decay
		// into its pairs and snapshots them; the run lasts until every
		// partition has answered, so its rows are the pairs recomputed.
		Name: "index-recompute", Spec: "0 4 * * *",
		Run: func(ctx context.Context) (int64, error) {
			return recomputeIndex(ctx, a.Store, s.GroupID, s.Topic, 10*time.Minute)
		},
	}, {
		// F20 retention: per-event records and old offers' delivery attempts go;
		// indexes and offers (with a summary of their attempts) stay.
		Name: "retention", Spec: "@daily",
		Run: func(ctx context.Context) (int64, error) {
			p, err := a.Store.PurgeBefore(ctx, time.Now().Add(-s.RetentionAge))
			logger.InfoContext(ctx, "retention", slog.Int64("contributions", p.Contributions), slog.Int64("decisions", p.Decisions),
				slog.Int64("conversions", p.Conversions), slog.Int64("attempts", p.Attempts))
			return p.Total(), err
		},
	}, {
		// What a crash leaves half-done and nothing else tidies: runs of seldom
		// jobs still marked running, presence rows of replicas that died.
		// (Delivery jobs a dead worker held are River's rescuer's; their
		// unknown sends are looked up at the provider before any retry.)
		Name: "crash-sweep", Spec: "@every 5m",
		Run: func(ctx context.Context) (int64, error) {
			runs, err := a.Store.CloseAbandonedRuns(ctx, time.Now())
			if err != nil {
				return runs, err
			}
			presence, err := a.Store.DeleteExpiredPresence(ctx)
			return runs + presence, err
		},
	}, {
		// Batch bot signals (F13): rings among social ties, reaction times to offers.
		Name: "bot-detection", Spec: "@every 10m",
		Run: func(ctx context.Context) (int64, error) { return a.Store.DetectBots(ctx, time.Now()) },
	}}
	if jobs, err = schedules.WithSpecs(jobs, s.JobSchedules); err != nil {
		return nil, fmt.Errorf("JOB_SCHEDULES: %w", err)
	}
	a.Scheduler, err = schedules.New(schedules.Config{
		Runner:   a.Metrics.InstrumentJobRunner(a.Store, isJobBusy),
		IsBusy:   isJobBusy,
		Logger:   logger,
		Location: s.JobTimeZone,
		Jobs:     jobs,
	})
	if err != nil {
		return nil, fmt.Errorf("scheduling jobs: %w", err)
	}

	// Partner apps open their user's push stream with a short-lived token
	// their backend asks for, not with the partner's API key (F16).
	streamKey, err := a.Store.ClusterSecret(ctx, "push-stream-tokens")
	if err != nil {
		return nil, err
	}
	streamTokens, err := push.NewStreamTokens(streamKey, 0)
	if err != nil {
		return nil, err
	}
	handler, err := api.New(api.Config{
		Partners: a.Store, Fans: a.Store, Explanations: a.Store, Scorers: a.Scorers, Marketers: a.Store,
		Redemptions: a.Store, Signer: a.Signer, Queues: a.Store, Funnels: a.Store, Rules: a.Store, DryRun: a.Replay,
		OptOuts: a.Store, Unsubscribe: a.Signer,
		Webhooks: api.Webhooks{Feedback: feedback, PublicBaseURL: s.PublicBaseURL, TwilioAuthToken: s.TwilioToken,
			HelpText: s.TwilioHelpText, SendGridPublicKey: s.SendGridWebhookKey, ReplayWindow: s.WebhookReplayWindow},
		Push: a.Push, StreamTokens: streamTokens, Outbox: opts.Outbox, Logger: logger, Metrics: a.Metrics, Ingest: ingester,
		Jobs: operatorJobs{a.Store, a.Scheduler}, OperatorToken: s.OperatorToken,
		Ready: a.ready,
		Bots:  a.Store, Agents: a.Store,
	})
	if err != nil {
		return nil, err
	}
	// The marketer console (F24) calls the API in process with the
	// marketer's own token; its live view follows offers through NOTIFY.
	csrfKey, err := a.Store.ClusterSecret(ctx, "console-csrf")
	if err != nil {
		return nil, err
	}
	if a.Console, err = console.New(console.Config{
		API: handler, Auth: a.Store, Offers: a.Store, Stats: a.Store, Scorers: a.Scorers, CSRFKey: csrfKey,
		Classifications: consoleClasses{a.Store},
		InsecureCookies: strings.HasPrefix(s.PublicBaseURL, "http://"), Logger: logger,
	}); err != nil {
		return nil, err
	}
	a.wg.Add(1)
	go func() { defer a.wg.Done(); _ = a.Console.Run(pushCtx) }()
	root := http.NewServeMux()
	root.Handle("/console/", a.Console)
	root.Handle("/", handler)

	ln, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", s.HTTPAddr, err)
	}
	a.HTTPAddr = ln.Addr().String()
	// Push streams never end by themselves: shutdown cancels their requests through this context.
	httpCtx, httpCancel := context.WithCancel(context.WithoutCancel(ctx))
	a.httpCancel = httpCancel
	a.httpServer = &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return httpCtx },
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving HTTP", slog.Any("error", err))
		}
	}()

	refreshCtx, refreshStop := context.WithCancel(context.WithoutCancel(ctx))
	a.refreshStop = refreshStop
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.refreshLoop(refreshCtx, s.RefreshInterval)
	}()
	// Consent withdrawals, erasures and rule changes reach every replica at once;
	// the periodic refresh above is the fallback if a notification is missed.
	go func() {
		defer a.wg.Done()
		_ = a.Directory.Listen(refreshCtx, func(ctx context.Context) {
			if err := errors.Join(a.Rules.Refresh(ctx), a.Scorers.Refresh(ctx)); err != nil && ctx.Err() == nil {
				logger.WarnContext(ctx, "refreshing rules and scoring", slog.Any("error", err))
			}
		})
	}()

	consumeCtx, consumeStop := context.WithCancel(context.WithoutCancel(ctx))
	a.consumeStop = consumeStop
	go func() { a.consumerDone <- a.Consumer.Run(consumeCtx) }()
	a.Scheduler.Start()
	logger.InfoContext(ctx, "crescendo started", slog.String("http", a.HTTPAddr), slog.String("topic", s.Topic), slog.String("group", s.GroupID))
	return a, nil
}

func isJobBusy(err error) bool { return errors.Is(err, store.ErrJobBusy) }

// observeRead counts a batch's records by event type.
func (a *App) observeRead(t events.Type, n int) {
	label := string(t)
	if t == "" {
		label = "invalid"
	}
	a.Metrics.EventsRead.WithLabelValues(label).Add(float64(n))
}

// Refresh reloads partners, linked accounts and rules into memory now.
func (a *App) Refresh(ctx context.Context) error {
	return errors.Join(a.Directory.Refresh(ctx), a.Rules.Refresh(ctx), a.Scorers.Refresh(ctx))
}

func (a *App) refreshLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.logger.WarnContext(ctx, "refreshing directory and rules", slog.Any("error", err))
			}
		}
	}
}

// ready runs the readiness checks at once, each bounded so that a hanging
// dependency answers "not ready" rather than hanging the probe.
func (a *App) ready(ctx context.Context) map[string]error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	checks := map[string]func(ctx context.Context) error{
		"database": a.Store.Ping,
		"migrations": func(ctx context.Context) error {
			ok, err := a.Store.MigrationsCurrent(ctx)
			if err == nil && !ok {
				err = errors.New("migrations pending")
			}
			return err
		},
		"broker": func(ctx context.Context) error {
			conn, err := (&kafka.Dialer{}).DialContext(ctx, "tcp", a.Brokers[0])
			if err != nil {
				return err
			}
			// A listening socket is not a broker: ask it for the topic's partitions.
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			defer conn.Close()
			if _, err := conn.ReadPartitions(a.settings.Topic); err != nil {
				return fmt.Errorf("reading partitions of %s: %w", a.settings.Topic, err)
			}
			return nil
		},
		// Only until the first assignment: during a rebalance every member
		// owns nothing for a moment, and readiness must not take every replica
		// out of service at once.
		"partitions": func(context.Context) error {
			if len(a.Consumer.Assigned()) > 0 {
				a.everAssigned.Store(true)
			}
			if !a.everAssigned.Load() {
				return errors.New("no partitions assigned yet: the consumer has not joined the group")
			}
			return nil
		},
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[string]error, len(checks))
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := check(ctx)
			mu.Lock()
			out[name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// Shutdown stops in the order that loses nothing: stop reading and checkpoint,
// stop scheduling, drain deliveries, close streams, then the store and broker.
func (a *App) Shutdown(ctx context.Context) {
	timeout := cmp.Or(a.settings.ShutdownTimeout, 20*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if a.consumeStop != nil {
		a.consumeStop()
		select {
		case err := <-a.consumerDone:
			if err != nil {
				a.logger.Error("consumer stopped", slog.Any("error", err))
			}
		case <-ctx.Done():
			a.logger.Error("consumer did not stop in time")
		}
	}
	if a.Scheduler != nil {
		if err := a.Scheduler.Stop(ctx); err != nil {
			a.logger.Warn("stopping scheduler", slog.Any("error", err))
		}
	}
	if a.Dispatcher != nil {
		if err := a.Dispatcher.Stop(ctx); err != nil {
			a.logger.Warn("stopping delivery workers", slog.Any("error", err))
		}
	}
	if a.refreshStop != nil {
		a.refreshStop()
	}
	if a.httpServer != nil {
		a.httpCancel()
		if err := a.httpServer.Shutdown(ctx); err != nil {
			a.logger.Warn("shutting down HTTP", slog.Any("error", err))
		}
	}
	if a.pushStop != nil {
		a.pushStop()
	}
	a.wg.Wait()
	if a.lag != nil {
		a.lag.close()
	}
	if a.producer != nil {
		a.producer.close()
	}
	if a.Store != nil {
		a.Store.Close()
	}
	if a.Broker != nil {
		a.Broker.Close()
	}
}

// ensureTopics creates the topics on a real cluster when they are missing.
func ensureTopics(ctx context.Context, brokers []string, topics []broker.TopicSpec) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t.Name, NumPartitions: int(t.Partitions), ReplicationFactor: -1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", name, terr)
		}
	}
	return nil
}
