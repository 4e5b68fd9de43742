package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/consumers"
	"github.com/crescendo-hq/crescendo/notifiers/email"
	"github.com/crescendo-hq/crescendo/notifiers/sms"
	"github.com/crescendo-hq/crescendo/pipeline"
	"github.com/crescendo-hq/crescendo/schedules"
	"github.com/crescendo-hq/crescendo/store"
)

// InstrumentCheckpointer measures each commit of next: its duration, the
// index states it writes and the tier crossings it records, once per batch.
func (m *Metrics) InstrumentCheckpointer(next consumers.Checkpointer) consumers.Checkpointer {
	return checkpointer{next: next, m: m}
}

type checkpointer struct {
	next consumers.Checkpointer
	m    *Metrics
}

func (c checkpointer) LoadPartition(ctx context.Context, p store.PartitionID) (pipeline.State, int64, error) {
	return c.next.LoadPartition(ctx, p)
}

func (c checkpointer) Commit(ctx context.Context, cp store.Checkpoint) ([]uuid.UUID, error) {
	began := time.Now()
	inserted, err := c.next.Commit(ctx, cp)
	switch {
	case errors.Is(err, store.ErrFenced):
		c.m.CheckpointFailures.WithLabelValues("fenced").Inc()
		return inserted, err
	case err != nil:
		c.m.CheckpointFailures.WithLabelValues("error").Inc()
		return inserted, err
	}
	c.m.CheckpointDuration.Observe(time.Since(began).Seconds())
	c.m.PairsWritten.Add(float64(len(cp.Delta.Pairs)))
	if n := len(cp.Delta.Offers); n > 0 {
		c.m.ThresholdCrossings.WithLabelValues("offer").Add(float64(n))
	}
	for _, d := range cp.Delta.Decisions {
		c.m.ThresholdCrossings.WithLabelValues(string(d.Reason)).Inc()
	}
	return inserted, nil
}

// JobRunner is what the scheduler runs jobs through.
type JobRunner interface {
	RunJob(ctx context.Context, run schedules.Run, fn func(ctx context.Context) (int64, error)) (int64, error)
}

// InstrumentJobRunner counts every run of next by outcome and times the runs
// made here; isBusy tells a job running on another replica from a failure.
func (m *Metrics) InstrumentJobRunner(next JobRunner, isBusy func(error) bool) JobRunner {
	return jobRunner{next: next, isBusy: isBusy, m: m}
}

type jobRunner struct {
	next   JobRunner
	isBusy func(error) bool
	m      *Metrics
}

func (j jobRunner) RunJob(ctx context.Context, run schedules.Run, fn func(ctx context.Context) (int64, error)) (int64, error) {
	var began time.Time
	ran := false
	id, err := j.next.RunJob(ctx, run, func(ctx context.Context) (int64, error) {
		began, ran = time.Now(), true
		return fn(ctx)
	})
	outcome := "ok"
	switch {
	case err != nil && j.isBusy != nil && j.isBusy(err):
		outcome = "busy"
	case err != nil:
		outcome = "error"
	}
	j.m.JobRuns.WithLabelValues(run.Job, outcome).Inc()
	if ran {
		j.m.JobDuration.WithLabelValues(run.Job).Observe(time.Since(began).Seconds())
	}
	return id, err
}

// SMSSender sends texts (notifiers.SMSSender).
type SMSSender interface {
	Send(ctx context.Context, m sms.Message) (sms.Result, error)
	FindSent(ctx context.Context, to string, since time.Time, contains string) (string, bool, error)
}

// InstrumentSMS times next's calls and counts its errors by Twilio code.
func (m *Metrics) InstrumentSMS(next SMSSender) SMSSender { return smsSender{next: next, m: m} }

type smsSender struct {
	next SMSSender
	m    *Metrics
}

func (s smsSender) Send(ctx context.Context, msg sms.Message) (sms.Result, error) {
	began := time.Now()
	res, err := s.next.Send(ctx, msg)
	s.m.observeProvider("twilio", "send", began, err)
	return res, err
}

func (s smsSender) FindSent(ctx context.Context, to string, since time.Time, contains string) (string, bool, error) {
	began := time.Now()
	id, ok, err := s.next.FindSent(ctx, to, since, contains)
	s.m.observeProvider("twilio", "find_sent", began, err)
	return id, ok, err
}

// EmailSender sends emails (notifiers.EmailSender).
type EmailSender interface {
	Send(ctx context.Context, m email.Message) (email.Result, error)
	FindSent(ctx context.Context, customArgKey, value string) (string, bool, error)
}

// InstrumentEmail times next's calls and counts its errors by HTTP status.
func (m *Metrics) InstrumentEmail(next EmailSender) EmailSender { return emailSender{next: next, m: m} }

type emailSender struct {
	next EmailSender
	m    *Metrics
}

func (s emailSender) Send(ctx context.Context, msg email.Message) (email.Result, error) {
	began := time.Now()
	res, err := s.next.Send(ctx, msg)
	s.m.observeProvider("sendgrid", "send", began, err)
	return res, err
}

func (s emailSender) FindSent(ctx context.Context, key, value string) (string, bool, error) {
	began := time.Now()
	id, ok, err := s.next.FindSent(ctx, key, value)
	s.m.observeProvider("sendgrid", "find_sent", began, err)
	return id, ok, err
}

func (m *Metrics) observeProvider(provider, op string, began time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		m.ProviderErrors.WithLabelValues(provider, ErrorCode(err)).Inc()
	}
	m.ProviderRequests.WithLabelValues(provider, op, outcome).Observe(time.Since(began).Seconds())
}

// ErrorCode names a provider error for the code label: Twilio's error code
// when it sent one, else the HTTP status; "unknown_outcome" for a timeout or
// a lost answer, "invalid_message" for one refused before sending, "canceled"
// on shutdown, "transport" for anything else.
func ErrorCode(err error) string {
	var te *sms.ProviderError
	if errors.As(err, &te) {
		if te.Code != 0 {
			return strconv.Itoa(te.Code)
		}
		return strconv.Itoa(te.HTTPStatus)
	}
	var ee *email.ProviderError
	if errors.As(err, &ee) {
		return strconv.Itoa(ee.HTTPStatus)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, sms.ErrOutcomeUnknown), errors.Is(err, email.ErrOutcomeUnknown):
		return "unknown_outcome"
	case errors.Is(err, sms.ErrInvalidMessage), errors.Is(err, email.ErrInvalidMessage):
		return "invalid_message"
	}
	return "transport"
}
