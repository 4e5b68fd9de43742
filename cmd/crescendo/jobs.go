package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
)

// jobRun is a run as GET /v1/jobs/runs answers it.
type jobRun struct {
	ID         int64      `json:"id"`
	Job        string     `json:"job"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Outcome    string     `json:"outcome"`
	Rows       int64      `json:"rows"`
	Error      string     `json:"error"`
	Scheduled  bool       `json:"scheduled"`
	Instance   string     `json:"instance"`
}

// runJobs runs `crescendo jobs list|run` against the operators' HTTP API.
func runJobs(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: crescendo jobs list [--job NAME] [--limit N] | crescendo jobs run NAME\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("jobs: no subcommand given")
	}
	fs := flag.NewFlagSet("jobs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	job := fs.String("job", "", "only this job's runs")
	limit := fs.Int("limit", 20, "how many runs, newest first")
	rest, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := newAPIClientFor(getenv, "OPERATOR_TOKEN", "the operators' token the servers were started with")
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	switch {
	case args[0] == "list" && len(rest) == 0:
		var out struct{ Runs []jobRun }
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *job != "" {
			q.Set("job", *job)
		}
		if _, err := c.do(ctx, http.MethodGet, "/v1/jobs/runs?"+q.Encode(), nil, &out); err != nil {
			return fmt.Errorf("jobs list: %w", err)
		}
		printRuns(stdout, out.Runs)
		return nil
	case args[0] == "run" && len(rest) == 1:
		var run jobRun
		_, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(rest[0])+"/run", nil, &run)
		if err != nil {
			return fmt.Errorf("jobs run %s: %w", rest[0], err)
		}
		printRuns(stdout, []jobRun{run})
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("jobs: unknown command %q", args)
}

func printRuns(w io.Writer, runs []jobRun) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tBY\tSTARTED\tTOOK\tOUTCOME\tROWS\tERROR")
	for _, r := range runs {
		took := "-"
		if r.FinishedAt != nil {
			took = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		by := "hand"
		if r.Scheduled {
			by = "schedule"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s@%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Job, by, r.Instance, r.StartedAt.UTC().Format(time.RFC3339), took, r.Outcome, r.Rows, r.Error)
	}
	_ = tw.Flush()
}
