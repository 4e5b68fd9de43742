// Package store is Crescendo's durable state in Postgres: the schema and its
// embedded migrations, the consumer checkpoint, and the queries the other parts
// need. It is the only package that writes SQL.
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID serializes migrations of replicas starting together.
const migrationLockID = 0x43524553 // "CRES"

// Config configures Open.
type Config struct {
	// URL is a Postgres connection string.
	URL string
	// CreateDatabase creates the database named in URL when it does not exist.
	CreateDatabase bool
	// MaxConns bounds the pool; default 16.
	MaxConns int32
	Logger   *slog.Logger
	// StateVersion is the format of the state chunks checkpoints write: 0
	// for the current one (4), or 3, which releases from before version 4
	// read, for the length of a rolling upgrade from such a release. Every
	// version from 2 on is read whatever this says.
	StateVersion int
}

// Store is a handle on the database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	// chunkVersion is the state chunk version checkpoints write.
	chunkVersion byte
}

// Open connects, creating the database when asked, and migrates it to the
// current schema (Crescendo's and the job queue's).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("store: URL is required")
	}
	logger := cmp.Or(cfg.Logger, slog.Default())
	version := cmp.Or(cfg.StateVersion, int(chunkVersion))
	if version != int(chunkVersion) && version != int(chunkV3) {
		return nil, fmt.Errorf("store: state version %d: this release writes %d or %d", cfg.StateVersion, chunkVersion, chunkV3)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	pcfg.MaxConns = cmp.Or(cfg.MaxConns, 16)
	// A process frozen mid-checkpoint (a paused VM, a cut network) would hold
	// its partition's offset row locked until TCP gives up, hours later, and the
	// partition's new owner could not load it. Postgres ends such a transaction;
	// if the zombie wakes, its commit fails and its retry is fenced.
	if _, set := pcfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		pcfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "30s"
	}
	// A process killed in the middle of a long statement (a job's delete, a
	// lock wait) would leave its backend running it, and holding its locks,
	// until the statement ends; Postgres polls the socket and stops it.
	if _, set := pcfg.ConnConfig.RuntimeParams["client_connection_check_interval"]; !set {
		pcfg.ConnConfig.RuntimeParams["client_connection_check_interval"] = "2s"
	}
	if cfg.CreateDatabase {
		if err := createDatabase(ctx, pcfg.ConnConfig); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to database: %w", err)
	}
	s := &Store{pool: pool, logger: logger, chunkVersion: byte(version)}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Pool returns the connection pool, for the job queue that shares it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func createDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	name := cc.Database
	if name == "" {
		return errors.New("store: the database URL names no database")
	}
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // another replica won the race
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection for migrations: %w", err)
	}
	defer conn.Release()
	// One session lock around both migrators: replicas starting at once wait
	// for the first instead of racing on DDL.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("taking migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockID)
	}()

	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	sub, err := fsSub(migrations, "migrations")
	if err != nil {
		return err
	}
	// Out of order is allowed because features land from parallel branches:
	// a database that already has a later migration still gets an earlier
	// one merged after it, instead of refusing to start.
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSlog(s.logger), goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	for _, r := range results {
		s.logger.InfoContext(ctx, "migration applied", slog.String("source", r.Source.Path), slog.Duration("took", r.Duration))
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Logger: s.logger})
	if err != nil {
		return fmt.Errorf("preparing job queue migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrating job queue schema: %w", err)
	}
	return nil
}

// MigrationsCurrent reports whether every embedded migration has been applied.
func (s *Store) MigrationsCurrent(ctx context.Context) (bool, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	sub, err := fsSub(migrations, "migrations")
	if err != nil {
		return false, err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return false, fmt.Errorf("preparing migrations: %w", err)
	}
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("checking migrations: %w", err)
	}
	return !pending, nil
}

// WALPosition returns the server's write-ahead log insert position in bytes:
// the difference between two readings is the log written in between, by
// everyone on the server.
func (s *Store) WALPosition(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading the WAL position: %w", err)
	}
	return n, nil
}

// ClusterSecret returns the named secret the replicas share, creating it
// with 32 random bytes the first time any replica asks. Such secrets never
// need configuring and never leave the database.
func (s *Store) ClusterSecret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generating secret: %w", err)
	}
	var v []byte
	var err error
	// A replica creating it at the same moment commits after this statement's
	// snapshot: the insert waits and skips, the read sees nothing; ask again.
	for range 2 {
		err = s.pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO cluster_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
			SELECT value FROM ins UNION ALL SELECT value FROM cluster_secrets WHERE name = $1 LIMIT 1`, name, fresh).Scan(&v)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret %s: %w", name, err)
	}
	return v, nil
}
