// Command crescendo turns fans' live listening into time-limited ticket offers.
//
//	crescendo serve   run in production mode (settings from the environment)
//	crescendo demo    run everything on one machine with an embedded broker and provider sandboxes
//	crescendo bench   measure the consumer path against a bare reader
//	crescendo orgs|tokens|performers   bootstrap marketer organizations and their tokens
//	crescendo rules   manage offer rules through the HTTP API
//	crescendo bots-eval   evaluate bot detection on a generated population
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/crescendo-hq/crescendo/app"
	"github.com/crescendo-hq/crescendo/bench"
	"github.com/crescendo-hq/crescendo/config"
	"github.com/crescendo-hq/crescendo/demo"
	"github.com/crescendo-hq/crescendo/logs"
)

const usage = `usage: crescendo <command> [flags]

commands:
  serve   consume activity, issue and deliver offers (settings from the environment; see README)
  demo    run end to end on this machine: embedded broker, provider sandboxes, simulated partner app
  bench   measure the consumer path against a bare kafka-go reader (see README)

  orgs create --id ID --name NAME                   create a marketer organization
  performers assign --org ID --performer ID         give an organization a performer
  tokens create --org ID --role admin --name NAME   print a new marketer API token, once
  rules apply|list|get|activate|deactivate|dry-run  manage offer rules through the HTTP API (CRESCENDO_URL, CRESCENDO_TOKEN)
  jobs list [--job NAME] [--limit N] | run NAME    periodic jobs' run history, or run one now once across replicas (CRESCENDO_URL, OPERATOR_TOKEN)
  bots-eval [--matrix FILE] [--seed N]              classify a generated population of humans and bots, print precision and recall
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crescendo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "demo":
		return runDemo(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], getenv, stdout, stderr)
	case "orgs", "tokens", "performers":
		return runAdmin(ctx, args, getenv, stdout, stderr)
	case "rules":
		return runRules(ctx, args[1:], getenv, stdout, stderr)
	case "jobs":
		return runJobs(ctx, args[1:], getenv, stdout, stderr)
	case "bots-eval":
		return runBotsEval(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, s.LogLevel, s.LogFormat)
	if err != nil {
		return err
	}
	a, err := app.Start(ctx, s, app.Options{Logger: logger})
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	a.Shutdown(context.WithoutCancel(ctx))
	logger.Info("stopped")
	return nil
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s, err := config.FromEnv(getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 0, "stop by itself after this long and print a summary (0: run until Ctrl-C)")
	rate := fs.Int("rate", 200, "events per second the simulated partner app publishes")
	fans := fs.Int("fans", 120, "fans to register")
	fs.StringVar(&s.DataDir, "data-dir", s.DataDir, "where the embedded broker keeps its data (CRESCENDO_DATA_DIR)")
	fs.StringVar(&s.HTTPAddr, "http-addr", s.HTTPAddr, "HTTP listen address (HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if getenv("OFFER_LINK_BASE") == "" {
		s.LinkBase = "http://" + s.HTTPAddr + "/o/"
	}
	// The demo's own output is the progress on stdout; logs stay quiet unless asked for.
	level := s.LogLevel
	if getenv("LOG_LEVEL") == "" {
		level = "warn"
	}
	format := s.LogFormat
	if getenv("LOG_FORMAT") == "" {
		format = "text"
	}
	logger, err := newLogger(stderr, level, format)
	if err != nil {
		return err
	}
	_, err = demo.Run(ctx, demo.Config{Settings: s, Duration: *duration, Rate: *rate, Fans: *fans, Out: stdout, Logger: logger})
	return err
}

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.IntVar(&cfg.Events, "events", 1_000_000, "events to pre-load and drain")
	fs.IntVar(&cfg.Fans, "fans", 100_000, "fans (each with one linked account)")
	fs.IntVar(&cfg.Performers, "performers", 1_000, "performers (Zipf popularity; rules on the top tenth)")
	fs.IntVar(&cfg.Partitions, "partitions", 8, "partitions of the activity topic")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "generator seed")
	runs := fs.Int("runs", 1, "complete runs (each with its own database and broker); more than one also prints the median of each figure")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the consumer-path drain (with -delivery: the backlog drain) to this file")
	delivery := fs.Bool("delivery", false, "measure delivery instead: a backlog drained through the provider sandboxes, then a steady rate")
	var dcfg bench.DeliveryConfig
	fs.IntVar(&dcfg.Backlog, "backlog", 10_000, "with -delivery: offers queued before the dispatcher starts")
	fs.IntVar(&dcfg.Rate, "rate", 1_000, "with -delivery: offers issued per second in the steady phase")
	fs.IntVar(&dcfg.Workers, "workers", 128, "with -delivery: deliveries in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		defer f.Close()
		cfg.CPUProfile, dcfg.CPUProfile = f, f
	}
	switch {
	case *runs < 1:
		return fmt.Errorf("bench: -runs must be at least 1, not %d", *runs)
	case *runs > 1 && *cpuProfile != "":
		return errors.New("bench: -cpuprofile profiles one run; drop -runs")
	case *runs > 1 && *delivery:
		return errors.New("bench: -runs repeats the consumer-path bench only; drop it with -delivery")
	}
	if *delivery {
		dcfg.AdminURL, dcfg.Out = getenv("BENCH_DATABASE_URL"), stdout
		res, err := bench.RunDelivery(ctx, dcfg)
		if err != nil {
			return err
		}
		res.Print(stdout, dcfg)
		return nil
	}
	cfg.AdminURL = getenv("BENCH_DATABASE_URL")
	cfg.Out = stdout
	results := make([]bench.Result, 0, *runs)
	for i := range *runs {
		if *runs > 1 {
			fmt.Fprintf(stdout, "run %d of %d\n", i+1, *runs)
		}
		res, err := bench.Run(ctx, cfg)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	bench.PrintRuns(stdout, cfg, results)
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	return logs.New(w, level, format)
}
