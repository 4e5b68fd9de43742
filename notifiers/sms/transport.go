package sms

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxErrorBody bounds how much of an error answer is buffered.
const maxErrorBody = 1 << 20

// transport is the per-call http.RoundTripper handed to twilio-go.
type transport struct {
	ctx    context.Context
	base   http.RoundTripper
	target *url.URL
	ex     *exchange
	// timeout bounds each exchange, body included; 0: none. It is applied
	// here rather than as http.Client.Timeout, whose timer goroutine lives
	// until the response body is closed: twilio-go never closes error bodies,
	// so each error answer held a goroutine for the whole timeout.
	timeout time.Duration
}

// exchange records the last HTTP answer of a call. twilio-go drops the status
// and headers when it turns an answer into an error, and both are needed to
// classify failures and honour Retry-After. ListMessage pages from its own
// goroutine, hence the mutex.
type exchange struct {
	mu     sync.Mutex
	status int
	header http.Header
}

func (e *exchange) record(status int, h http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status, e.header = status, h
}

func (e *exchange) last() (int, http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status, e.header
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// twilio-go builds requests with context.Background(); Clone swaps in
	// the caller's context and leaves the original request untouched, as
	// the RoundTripper contract requires.
	ctx, cancel := t.ctx, context.CancelFunc(func() {})
	if t.timeout > 0 {
		ctx, cancel = context.WithTimeout(t.ctx, t.timeout)
	}
	out := req.Clone(ctx)
	if t.target != nil && isTwilioAPIHost(out.URL.Hostname()) {
		u := *t.target
		u.Path = strings.TrimSuffix(t.target.Path, "/") + out.URL.Path
		u.RawPath = ""
		u.RawQuery = out.URL.RawQuery
		out.URL = &u
		out.Host = ""
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	t.ex.record(resp.StatusCode, resp.Header.Clone())
	if resp.StatusCode >= 400 {
		// twilio-go never closes error bodies; buffering and closing here
		// returns the connection to the pool instead of leaking it.
		b, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		cancel()
		if readErr != nil {
			return nil, readErr
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp, nil
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose ends an exchange's timeout once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// isTwilioAPIHost matches api.twilio.com and the edge/region variants
// twilio-go derives from TWILIO_EDGE and TWILIO_REGION
// (api.<edge>.<region>.twilio.com).
func isTwilioAPIHost(host string) bool {
	return host == "api.twilio.com" || strings.HasPrefix(host, "api.") && strings.HasSuffix(host, ".twilio.com")
}
