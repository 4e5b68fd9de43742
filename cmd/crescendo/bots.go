package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/crescendo-hq/crescendo/bots"
)

// runBotsEval generates a population of humans, bots, rings, resellers and
// declared agents, classifies it and prints the figures (F13–F15).
func runBotsEval(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bots-eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := bots.DefaultPopulation()
	fs.IntVar(&cfg.Humans, "humans", cfg.Humans, "people")
	fs.IntVar(&cfg.Agents, "agents", cfg.Agents, "people with a declared agent")
	fs.IntVar(&cfg.NaiveBots, "naive-bots", cfg.NaiveBots, "naive bots")
	fs.IntVar(&cfg.CarefulBots, "careful-bots", cfg.CarefulBots, "bots with a fake social history")
	fs.IntVar(&cfg.Rings, "rings", cfg.Rings, "rings of fake friends")
	fs.IntVar(&cfg.RingSize, "ring-size", cfg.RingSize, "accounts per ring")
	fs.IntVar(&cfg.Resellers, "resellers", cfg.Resellers, "resellers")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed: the same seed makes the same population")
	matrix := fs.String("matrix", "", "write the confusion matrix as CSV to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := bots.Evaluate(bots.Generate(cfg), bots.DefaultThresholds(), cfg.Seed)
	if err := r.WriteText(stdout); err != nil {
		return err
	}
	if *matrix == "" {
		return r.WriteMatrix(stdout)
	}
	f, err := os.Create(*matrix)
	if err != nil {
		return fmt.Errorf("creating matrix file: %w", err)
	}
	if err := r.WriteMatrix(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
