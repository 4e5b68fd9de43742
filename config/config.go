// Package config reads Crescendo's settings from the environment. Every setting
// has one environment variable; the README's table lists them all and a test
// keeps the two in step.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Settings are the process's settings.
type Settings struct {
	KafkaBrokers        []string          // KAFKA_BROKERS; empty starts the embedded broker
	EmbeddedAddr        string            // CRESCENDO_KAFKA_ADDR
	DataDir             string            // CRESCENDO_DATA_DIR: the embedded broker's data and the demo's files
	Topic               string            // KAFKA_TOPIC
	DLQTopic            string            // KAFKA_DLQ_TOPIC
	GroupID             string            // KAFKA_GROUP_ID
	Partitions          int               // KAFKA_PARTITIONS: used when Crescendo creates its topics
	DatabaseURL         string            // DATABASE_URL
	CreateDatabase      bool              // DATABASE_CREATE
	HTTPAddr            string            // HTTP_ADDR
	TwilioSID           string            // TWILIO_ACCOUNT_SID
	TwilioToken         string            // TWILIO_AUTH_TOKEN
	TwilioFrom          string            // TWILIO_FROM
	TwilioBaseURL       string            // TWILIO_BASE_URL
	SendGridKey         string            // SENDGRID_API_KEY
	SendGridFrom        string            // SENDGRID_FROM
	SendGridBaseURL     string            // SENDGRID_BASE_URL
	SigningKeyID        string            // OFFER_SIGNING_KEY_ID
	SigningKeys         map[string][]byte // OFFER_SIGNING_KEYS: "id:base64key,id2:base64key"
	LinkBase            string            // OFFER_LINK_BASE
	DeliveryWorkers     int               // DELIVERY_WORKERS
	SMSRate             float64           // DELIVERY_SMS_RATE
	EmailRate           float64           // DELIVERY_EMAIL_RATE
	RetryBase           time.Duration     // DELIVERY_RETRY_BASE
	RescueAfter         time.Duration     // DELIVERY_RESCUE_AFTER
	ProviderTimeout     time.Duration     // PROVIDER_TIMEOUT
	PublicBaseURL       string            // PUBLIC_BASE_URL
	SendGridWebhookKey  string            // SENDGRID_WEBHOOK_PUBLIC_KEY
	WebhookReplayWindow time.Duration     // SENDGRID_WEBHOOK_REPLAY_WINDOW
	TwilioHelpText      string            // TWILIO_HELP_TEXT
	SessionGap          time.Duration     // SESSION_GAP
	BatchLinger         time.Duration     // CHECKPOINT_LINGER
	StateVersion        int               // STATE_CHUNK_VERSION
	ExpirySchedule      string            // OFFER_EXPIRY_SCHEDULE
	JobSchedules        map[string]string // JOB_SCHEDULES
	RetentionAge        time.Duration     // RETENTION_AGE
	JobTimeZone         *time.Location    // JOB_TIME_ZONE
	OperatorToken       string            // OPERATOR_TOKEN
	RefreshInterval     time.Duration     // DIRECTORY_REFRESH
	ShutdownTimeout     time.Duration     // SHUTDOWN_TIMEOUT
	LogLevel            string            // LOG_LEVEL
	LogFormat           string            // LOG_FORMAT
	IngestRate          float64           // INGEST_RATE
	IngestReplayWindow  time.Duration     // INGEST_REPLAY_WINDOW

	// Consumer group timing: how soon a crashed member's partitions move on.
	SessionTimeout    time.Duration // KAFKA_SESSION_TIMEOUT
	RebalanceTimeout  time.Duration // KAFKA_REBALANCE_TIMEOUT
	HeartbeatInterval time.Duration // KAFKA_HEARTBEAT_INTERVAL
	Partitioner       string        // KAFKA_PARTITIONER
}

// Var documents one environment variable.
type Var struct {
	Name, Default, Doc string
}

// Vars lists every setting with its default, in README order.
var Vars = []Var{
	{"KAFKA_BROKERS", "", "Comma-separated Kafka bootstrap brokers. Empty: start the embedded Kafka-protocol broker."},
	{"CRESCENDO_KAFKA_ADDR", "127.0.0.1:9092", "Listen address of the embedded broker."},
	{"CRESCENDO_DATA_DIR", "./crescendo-data", "Where the embedded broker keeps its log, and the demo its generated keys."},
	{"KAFKA_TOPIC", "fan-activity", "Topic of partner activity events."},
	{"KAFKA_DLQ_TOPIC", "fan-activity.dlq", "Dead-letter topic for events that cannot be used."},
	{"KAFKA_GROUP_ID", "crescendo", "Consumer group of the Crescendo processes."},
	{"KAFKA_PARTITIONS", "12", "Partitions of the activity topic when Crescendo creates it."},
	{"KAFKA_SESSION_TIMEOUT", "30s", "How long the group waits for a silent member (a crashed process) before it hands its partitions to the others."},
	{"KAFKA_REBALANCE_TIMEOUT", "30s", "How long the group waits for members to rejoin during a rebalance."},
	{"KAFKA_HEARTBEAT_INTERVAL", "3s", "How often a member tells the group it is alive; well under the session timeout."},
	{"KAFKA_PARTITIONER", "murmur2", "Key partitioner partner apps produce with: murmur2 (Java client), crc32 (librdkafka default) or fnv1a (Sarama, kafka-go Hash). A fan's events keyed by their first account land where the fan's state lives; others are routed there."},
	{"DATABASE_URL", "postgres://postgres@127.0.0.1:5432/crescendo?sslmode=disable", "Postgres connection string."},
	{"DATABASE_CREATE", "false (demo: true)", "Create the database if it does not exist."},
	{"HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address (API, push streams, health)."},
	{"TWILIO_ACCOUNT_SID", "", "Twilio account SID. Empty: no SMS channel."},
	{"TWILIO_AUTH_TOKEN", "", "Twilio auth token."},
	{"TWILIO_FROM", "", "Sender: an E.164 number or a Messaging Service SID (MG…)."},
	{"TWILIO_BASE_URL", "https://api.twilio.com", "Twilio API base URL (the demo points it at its sandbox)."},
	{"SENDGRID_API_KEY", "", "SendGrid API key. Empty: no email channel."},
	{"SENDGRID_FROM", "", "Sender email address."},
	{"SENDGRID_BASE_URL", "https://api.sendgrid.com", "SendGrid API base URL (the demo points it at its sandbox)."},
	{"OFFER_SIGNING_KEYS", "", "Offer token keys, `id:base64key` comma-separated, each at least 32 bytes; old keys keep verifying after rotation."},
	{"OFFER_SIGNING_KEY_ID", "", "Which key signs new tokens; defaults to the only key."},
	{"OFFER_LINK_BASE", "http://HTTP_ADDR/o/", "Prefix of offer links; the token follows it."},
	{"DELIVERY_WORKERS", "128", "Deliveries in flight per process (most wait on a provider, so this is far above the core count); 0 runs no delivery workers (a consumer-only replica that still queues deliveries for others)."},
	{"DELIVERY_SMS_RATE", "10", "Texts per second per process (token bucket); 0: no cap. The provider's limit divided by the replicas."},
	{"DELIVERY_EMAIL_RATE", "100", "Emails per second per process (token bucket); 0: no cap. The provider's limit divided by the replicas."},
	{"DELIVERY_RESCUE_AFTER", "2m", "How long a delivery job may run before another process takes it over (its own died); the attempt it left is looked up at the provider first."},
	{"PUBLIC_BASE_URL", "http://HTTP_ADDR", "The origin providers call back (Twilio status and inbound webhooks sign the whole URL they call)."},
	{"SENDGRID_WEBHOOK_PUBLIC_KEY", "", "The Event Webhook verification key SendGrid shows (base64 or PEM). Empty: no SendGrid webhook route."},
	{"SENDGRID_WEBHOOK_REPLAY_WINDOW", "5m", "How far a SendGrid webhook's signed timestamp may be from now."},
	{"TWILIO_HELP_TEXT", "", "The answer to an inbound HELP text; empty: a built-in one."},
	{"PROVIDER_TIMEOUT", "10s", "Timeout of each call to Twilio or SendGrid; a send that times out has an unknown outcome and is looked up before any retry."},
	{"DELIVERY_RETRY_BASE", "30s", "First delivery retry delay, doubling with jitter up to 10m; also how long an unknown outcome waits before the provider is asked whether the message went out."},
	{"SESSION_GAP", "30m", "Listening session gap (F8)."},
	{"CHECKPOINT_LINGER", "20ms", "How long a partition batch waits for more events before it checkpoints."},
	{"STATE_CHUNK_VERSION", "4", "Format of the partition state checkpoints write: 4, or 3 while a rolling upgrade from a release that reads only 3 runs (roll out with 3, then again without it). Every format is read whatever this says."},
	{"OFFER_EXPIRY_SCHEDULE", "@every 1m", "Cron expression of the offer expiry job."},
	{"JOB_SCHEDULES", "", "Cron expressions of any periodic jobs, in place of their defaults: `name=expression` separated by `;`, e.g. `bot-detection=*/5 * * * *;webhook-events-prune=CRON_TZ=Europe/Berlin 0 3 * * *`. `crescendo serve` refuses an unknown job name or a bad expression."},
	{"RETENTION_AGE", "2160h", "Age after which the `retention` job (daily) purges per-event records (contributions, offer decisions, conversions) and the delivery attempts of offers that expired; offers keep a summary of their attempts. At least 24h."},
	{"OPERATOR_TOKEN", "", "Secret bearer token of the operators' API (`/v1/jobs`: run history, runs by hand) and of `crescendo jobs`; empty: that API answers 403."},
	{"JOB_TIME_ZONE", "UTC", "IANA time zone the jobs' cron expressions are read in (one can still say `CRON_TZ=Zone` itself)."},
	{"DIRECTORY_REFRESH", "5s", "How often partners, linked accounts and rules are reloaded into memory."},
	{"SHUTDOWN_TIMEOUT", "20s", "How long shutdown waits for in-flight work."},
	{"INGEST_RATE", "1000", "Events per second one partner may post to `POST /v1/events` on each replica (token bucket); 0: no limit. Over it: 429 with Retry-After."},
	{"INGEST_REPLAY_WINDOW", "5m", "How far a posted batch's signed timestamp may be from now."},
	{"LOG_LEVEL", "info", "debug, info, warn or error."},
	{"LOG_FORMAT", "json", "json or text."},
}

// defaults maps each of Vars to its default. A few documented defaults are
// descriptions ("http://HTTP_ADDR/o/", "false (demo: true)") that FromEnv
// resolves itself; those are read with an explicit default instead.
var defaults = func() map[string]string {
	m := make(map[string]string, len(Vars))
	for _, v := range Vars {
		m[v.Name] = v.Default
	}
	return m
}()

// FromEnv reads settings from the environment through getenv (os.Getenv in production).
func FromEnv(getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	getOr := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	// get takes the default from Vars, so it is written once, where it is documented.
	get := func(name string) string {
		def, ok := defaults[name]
		if !ok {
			panic("config: " + name + " is not in Vars") // a programming error; TestFromEnvDefaultsAndErrors reaches every name
		}
		return getOr(name, def)
	}
	var errs []error
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration such as %s", name, defaults[name]))
		}
		return d
	}
	num := func(name string) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive whole number", name))
		}
		return n
	}
	count := func(name string) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: want a whole number, 0 or more", name))
		}
		return n
	}
	rate := func(name string) float64 {
		f, err := strconv.ParseFloat(get(name), 64)
		if err != nil || f < 0 {
			errs = append(errs, fmt.Errorf("%s: want a number of messages per second, 0 or more", name))
		}
		return f
	}
	s := Settings{
		EmbeddedAddr:        get("CRESCENDO_KAFKA_ADDR"),
		DataDir:             get("CRESCENDO_DATA_DIR"),
		Topic:               get("KAFKA_TOPIC"),
		GroupID:             get("KAFKA_GROUP_ID"),
		Partitions:          num("KAFKA_PARTITIONS"),
		DatabaseURL:         get("DATABASE_URL"),
		HTTPAddr:            get("HTTP_ADDR"),
		TwilioSID:           get("TWILIO_ACCOUNT_SID"),
		TwilioToken:         get("TWILIO_AUTH_TOKEN"),
		TwilioFrom:          get("TWILIO_FROM"),
		TwilioBaseURL:       getOr("TWILIO_BASE_URL", ""),
		SendGridKey:         get("SENDGRID_API_KEY"),
		SendGridFrom:        get("SENDGRID_FROM"),
		SendGridBaseURL:     getOr("SENDGRID_BASE_URL", ""),
		SigningKeyID:        get("OFFER_SIGNING_KEY_ID"),
		LinkBase:            getOr("OFFER_LINK_BASE", ""),
		DeliveryWorkers:     count("DELIVERY_WORKERS"),
		SMSRate:             rate("DELIVERY_SMS_RATE"),
		EmailRate:           rate("DELIVERY_EMAIL_RATE"),
		RetryBase:           dur("DELIVERY_RETRY_BASE"),
		RescueAfter:         dur("DELIVERY_RESCUE_AFTER"),
		ProviderTimeout:     dur("PROVIDER_TIMEOUT"),
		SendGridWebhookKey:  get("SENDGRID_WEBHOOK_PUBLIC_KEY"),
		WebhookReplayWindow: dur("SENDGRID_WEBHOOK_REPLAY_WINDOW"),
		TwilioHelpText:      get("TWILIO_HELP_TEXT"),
		SessionGap:          dur("SESSION_GAP"),
		BatchLinger:         dur("CHECKPOINT_LINGER"),
		ExpirySchedule:      get("OFFER_EXPIRY_SCHEDULE"),
		JobSchedules:        jobSpecs(get("JOB_SCHEDULES"), &errs),
		RetentionAge:        dur("RETENTION_AGE"),
		JobTimeZone:         zone(get("JOB_TIME_ZONE"), &errs),
		OperatorToken:       get("OPERATOR_TOKEN"),
		RefreshInterval:     dur("DIRECTORY_REFRESH"),
		ShutdownTimeout:     dur("SHUTDOWN_TIMEOUT"),
		LogLevel:            get("LOG_LEVEL"),
		LogFormat:           get("LOG_FORMAT"),
		IngestRate:          rate("INGEST_RATE"),
		IngestReplayWindow:  dur("INGEST_REPLAY_WINDOW"),
	}
	switch v := get("STATE_CHUNK_VERSION"); v {
	case "4", "3":
		s.StateVersion = int(v[0] - '0')
	default:
		errs = append(errs, fmt.Errorf("STATE_CHUNK_VERSION: want 4 or 3, got %q", v))
	}
	s.SessionTimeout = dur("KAFKA_SESSION_TIMEOUT")
	s.RebalanceTimeout = dur("KAFKA_REBALANCE_TIMEOUT")
	s.HeartbeatInterval = dur("KAFKA_HEARTBEAT_INTERVAL")
	switch s.Partitioner = strings.ToLower(get("KAFKA_PARTITIONER")); s.Partitioner {
	case "murmur2", "crc32", "fnv1a":
	default:
		errs = append(errs, fmt.Errorf("KAFKA_PARTITIONER: want murmur2, crc32 or fnv1a, got %q", s.Partitioner))
	}
	if s.RetentionAge > 0 && s.RetentionAge < 24*time.Hour {
		// Offers live hours; a shorter age would purge attempts the dispatcher still reads.
		errs = append(errs, fmt.Errorf("RETENTION_AGE: want at least 24h, got %s", s.RetentionAge))
	}
	s.DLQTopic = getOr("KAFKA_DLQ_TOPIC", s.Topic+".dlq")
	s.PublicBaseURL = getOr("PUBLIC_BASE_URL", "http://"+s.HTTPAddr)
	if b := get("KAFKA_BROKERS"); b != "" {
		for _, h := range strings.Split(b, ",") {
			if h = strings.TrimSpace(h); h != "" {
				s.KafkaBrokers = append(s.KafkaBrokers, h)
			}
		}
	}
	switch v := strings.ToLower(getOr("DATABASE_CREATE", "false")); v {
	case "true", "1", "yes":
		s.CreateDatabase = true
	case "false", "0", "no":
	default:
		errs = append(errs, fmt.Errorf("DATABASE_CREATE: want true or false, got %q", v))
	}
	if s.LinkBase == "" {
		s.LinkBase = "http://" + s.HTTPAddr + "/o/"
	}
	keys, err := ParseKeys(get("OFFER_SIGNING_KEYS"))
	if err != nil {
		errs = append(errs, err)
	}
	s.SigningKeys = keys
	if s.SigningKeyID == "" && len(keys) == 1 {
		for id := range keys {
			s.SigningKeyID = id
		}
	}
	if s.TwilioSID != "" && (s.TwilioToken == "" || s.TwilioFrom == "") {
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN and TWILIO_FROM are required with TWILIO_ACCOUNT_SID"))
	}
	if s.SendGridKey != "" && s.SendGridFrom == "" {
		errs = append(errs, errors.New("SENDGRID_FROM is required with SENDGRID_API_KEY"))
	}
	return s, errors.Join(errs...)
}

// ParseKeys parses "id:base64key,id2:base64key".
func ParseKeys(v string) (map[string][]byte, error) {
	keys := map[string][]byte{}
	if v == "" {
		return keys, nil
	}
	for _, part := range strings.Split(v, ",") {
		id, enc, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || id == "" {
			return nil, errors.New("OFFER_SIGNING_KEYS: want id:base64key pairs separated by commas")
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("OFFER_SIGNING_KEYS: key %q is not base64", id)
		}
		keys[id] = key
	}
	return keys, nil
}

// jobSpecs reads JOB_SCHEDULES: name=expression pairs separated by ";"
// (cron expressions hold spaces and commas).
func jobSpecs(v string, errs *[]error) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, spec, ok := strings.Cut(part, "=")
		name, spec = strings.TrimSpace(name), strings.TrimSpace(spec)
		if !ok || name == "" || spec == "" {
			*errs = append(*errs, fmt.Errorf("JOB_SCHEDULES: want name=expression pairs separated by ';'; got %q", part))
			continue
		}
		if _, dup := out[name]; dup {
			*errs = append(*errs, fmt.Errorf("JOB_SCHEDULES: job %q given twice", name))
		}
		out[name] = spec
	}
	return out
}

func zone(name string, errs *[]error) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("JOB_TIME_ZONE: %w", err))
		return time.UTC
	}
	return loc
}
