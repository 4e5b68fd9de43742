package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is where the broker listens unless Config.Addr says otherwise:
// Kafka's usual port, on loopback so a development machine does not expose
// an unauthenticated broker to its network.
const DefaultAddr = "127.0.0.1:9092"

// Config configures a Broker.
type Config struct {
	// Addr is the TCP address to listen on, "host:port". Defaults to
	// DefaultAddr; a port of 0 picks a free one, which tests want.
	Addr string
	// AdvertisedAddr is the "host:port" clients are told to connect to in
	// metadata responses. Kafka clients bootstrap from Addrs and then use
	// only advertised addresses, so this matters when Addr binds all
	// interfaces (":9092") and clients run elsewhere, as in a compose
	// file. Defaults to the listening address, with an unspecified host
	// replaced by 127.0.0.1.
	AdvertisedAddr string
	// DataDir, if set, is where the broker keeps topics, records and
	// consumer group offsets, so they survive a restart. Empty keeps
	// everything in memory.
	DataDir string
	// Topics are created at start unless they exist already, as they do
	// after a restart with the same DataDir.
	Topics []TopicSpec
	// Logger receives the broker's logs. kfake logs every request it cannot
	// handle at its info level, so its info and debug logs go to slog's
	// debug level and below. Defaults to slog.Default().
	Logger *slog.Logger
}

// TopicSpec describes a topic to create at start.
type TopicSpec struct {
	// Name is the topic name: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
	Name string
	// Partitions is the number of partitions, 1 or more; 0 means 1.
	Partitions int32
}

// Broker is a single-node Kafka-protocol broker for development and demos,
// built on kfake. It is not for production: it has one replica, no
// authentication, and kfake's durability (see kfake.DataDir).
type Broker struct {
	cluster   *kfake.Cluster
	logger    *slog.Logger
	closeOnce sync.Once
}

// Start validates cfg, starts the broker listening and creates the missing
// topics. ctx bounds only the start; the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	logger := cmp.Or(cfg.Logger, slog.Default())
	addr := cmp.Or(cfg.Addr, DefaultAddr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("validating Addr %q: %w", addr, err)
	}
	if cfg.AdvertisedAddr != "" {
		if _, port, err := net.SplitHostPort(cfg.AdvertisedAddr); err != nil {
			return nil, fmt.Errorf("validating AdvertisedAddr %q: %w", cfg.AdvertisedAddr, err)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("validating AdvertisedAddr %q: port is not a number", cfg.AdvertisedAddr)
		}
	}
	topics, err := validateTopics(cfg.Topics)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting broker: %w", err)
	}

	var ln net.Listener
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.WithLogger(slogAdapter{logger}),
		// kfake hands the listener a loopback address with the port it
		// picked; the broker listens where it is configured instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := new(net.ListenConfig).Listen(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			ln = advertise(l, cfg.AdvertisedAddr)
			return ln, nil
		}),
		// Seeding applies only to a fresh DataDir: kfake skips it when it
		// reloads state. ensureTopics below covers both cases.
		kfake.DefaultNumPartitions(1),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting broker on %s: %w", addr, err)
	}
	b := &Broker{cluster: cluster, logger: logger}
	if err := b.ensureTopics(topics); err != nil {
		b.Close()
		return nil, err
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "broker started",
		slog.String("listen_addr", ln.Addr().String()),
		slog.String("data_dir", cfg.DataDir),
		slog.Int("topics", len(topics)))
	return b, nil
}

// validateTopics checks the topic specs and fills in default partitions.
func validateTopics(specs []TopicSpec) ([]TopicSpec, error) {
	out := make([]TopicSpec, 0, len(specs))
	seen := make(map[string]bool, len(specs))
	for _, t := range specs {
		if err := validateTopicName(t.Name); err != nil {
			return nil, fmt.Errorf("validating topic %q: %w", t.Name, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("validating topic %q: listed twice", t.Name)
		}
		seen[t.Name] = true
		if t.Partitions < 0 {
			return nil, fmt.Errorf("validating topic %q: %d partitions", t.Name, t.Partitions)
		}
		t.Partitions = cmp.Or(t.Partitions, 1)
		out = append(out, t)
	}
	return out, nil
}

// validateTopicName applies Kafka's rules, so a topic the embedded broker
// accepts is one a real cluster accepts too.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New("name may not be . or ..")
	case len(name) > 249:
		return errors.New("name longer than 249 characters")
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name has %q; want only [a-zA-Z0-9._-]", c)
		}
	}
	return nil
}

// ensureTopics creates the topics that do not exist. Existing topics keep
// their data and their partition count: Kafka cannot shrink a topic, and
// growing it would move keys to other partitions behind the consumers' back.
func (b *Broker) ensureTopics(topics []TopicSpec) error {
	for _, t := range topics {
		err := b.cluster.CreateTopic(t.Name, t.Partitions, nil)
		switch {
		case err == nil:
			b.logger.LogAttrs(context.Background(), slog.LevelInfo, "topic created",
				slog.String("topic", t.Name), slog.Int("partitions", int(t.Partitions)))
		case errors.Is(err, kerr.TopicAlreadyExists):
			have := len(b.cluster.PartitionInfos(t.Name))
			if have != int(t.Partitions) {
				b.logger.LogAttrs(context.Background(), slog.LevelWarn, "topic exists with a different partition count; keeping it",
					slog.String("topic", t.Name), slog.Int("partitions", have), slog.Int("configured_partitions", int(t.Partitions)))
			}
		default:
			return fmt.Errorf("creating topic %s: %w", t.Name, err)
		}
	}
	return nil
}

// Addrs returns the "host:port" addresses Kafka clients bootstrap from.
func (b *Broker) Addrs() []string {
	return b.cluster.ListenAddrs()
}

// Close stops the broker, first writing its state to DataDir if it has one.
// It is safe to call more than once. Clients still connected see their
// connections close.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.cluster.Close()
		b.logger.LogAttrs(context.Background(), slog.LevelInfo, "broker stopped")
	})
}

// advertisedListener reports an advertised address instead of the one it
// listens on: kfake puts a listener's Addr in metadata responses.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// advertise wraps l so that its Addr is advertised, or, when advertised is
// empty, so that an unspecified host (listening on all interfaces) reads
// as loopback, which unlike 0.0.0.0 is a valid destination.
func advertise(l net.Listener, advertised string) net.Listener {
	if advertised != "" {
		return advertisedListener{l, staticAddr(advertised)}
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return advertisedListener{l, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tcp.Port}}
	}
	return l
}

// staticAddr is a net.Addr that is just a "host:port" string, so a host
// name can be advertised.
type staticAddr string

func (a staticAddr) Network() string { return "tcp" }
func (a staticAddr) String() string  { return string(a) }
