// Package email sends ticket-offer emails through SendGrid's v3 Mail Send API
// using the official sendgrid-go library, and finds earlier sends through the
// Email Activity API.
//
// sendgrid-go reports any HTTP answer, including 4xx and 5xx, as a successful
// call; this package checks the status itself and turns error answers into
// *ProviderError.
package email

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"
)

// DefaultBaseURL is SendGrid's API origin.
const DefaultBaseURL = "https://api.sendgrid.com"

// DefaultTimeout bounds each HTTP exchange when Config.HTTPClient is nil;
// sendgrid-go's own default client has no timeout at all.
const DefaultTimeout = 10 * time.Second

// activitySearchLimit is how many Email Activity hits FindSent asks for; it
// only needs the newest.
const activitySearchLimit = 10

var (
	// ErrOutcomeUnknown marks errors after which SendGrid may or may not have
	// accepted the email: network failures, timeouts, cancellation after the
	// request left, and 5xx answers. Check FindSent before retrying.
	ErrOutcomeUnknown = errors.New("outcome unknown")

	// ErrInvalidMessage marks messages rejected before any request was made.
	ErrInvalidMessage = errors.New("invalid message")
)

// customArgKeyPattern keeps keys inside what the Email Activity query
// language can quote without escaping rules SendGrid does not document.
var customArgKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Config configures a Sender.
type Config struct {
	// APIKey is the SendGrid API key (needs mail.send, and messages.read
	// for FindSent).
	APIKey string
	// FromEmail is the verified sender address.
	FromEmail string
	// FromName is the sender's display name. Optional.
	FromName string
	// BaseURL is the API origin. Empty means DefaultBaseURL; tests point it
	// at a sandbox such as http://127.0.0.1:PORT.
	BaseURL string
	// HTTPClient performs the requests. Optional; defaults to a client with
	// DefaultTimeout.
	HTTPClient *http.Client
}

// Message is one email to send.
type Message struct {
	// ToEmail is the recipient's address. Required.
	ToEmail string
	// ToName is the recipient's display name. Optional.
	ToName string
	// Subject is the subject line.
	Subject string
	// Text is the plain-text body. At least one of Text and HTML is needed.
	Text string
	// HTML is the HTML body, sent after Text as SendGrid requires.
	HTML string
	// CustomArgs travel with the email into SendGrid's event data and make
	// it findable with FindSent (Email Activity calls them unique_args).
	CustomArgs map[string]string
	// Headers are extra MIME headers, e.g. List-Unsubscribe.
	Headers map[string]string
}

// Result describes an accepted email.
type Result struct {
	// ProviderID is SendGrid's X-Message-Id. Email Activity msg_ids start
	// with it, followed by a "." and a per-recipient suffix.
	ProviderID string
}

// ErrorDetail is one entry of a SendGrid error answer.
type ErrorDetail struct {
	// Message describes the problem.
	Message string
	// Field names the offending request field, "" when SendGrid sent none.
	Field string
}

// ProviderError is an error answer from SendGrid.
type ProviderError struct {
	// HTTPStatus is the HTTP status code of the answer.
	HTTPStatus int
	// Errors are the entries of the answer's "errors" array.
	Errors []ErrorDetail
	// RetryAfter is the delay SendGrid asked for, from Retry-After or
	// X-RateLimit-Reset, 0 if none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *ProviderError) Error() string {
	msgs := make([]string, 0, len(e.Errors))
	for _, d := range e.Errors {
		if d.Field != "" {
			msgs = append(msgs, d.Field+": "+d.Message)
		} else {
			msgs = append(msgs, d.Message)
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, http.StatusText(e.HTTPStatus))
	}
	return fmt.Sprintf("sendgrid answered HTTP %d: %s", e.HTTPStatus, strings.Join(msgs, "; "))
}

// Permanent reports whether repeating the same request is pointless:
// validation (400), authentication (401, 403), unknown resources (404) and
// oversized bodies (413). Rate limiting (429) and server errors (5xx) are
// transient.
func (e *ProviderError) Permanent() bool {
	switch {
	case e.HTTPStatus == http.StatusTooManyRequests, e.HTTPStatus == http.StatusRequestTimeout, e.HTTPStatus >= 500:
		return false
	}
	return e.HTTPStatus >= 400
}

// Is makes errors.Is(err, ErrOutcomeUnknown) true for 5xx answers: a server
// error does not prove the email was not accepted.
func (e *ProviderError) Is(target error) bool {
	return target == ErrOutcomeUnknown && e.HTTPStatus >= 500
}

// Sender sends email through SendGrid. It is safe for concurrent use.
type Sender struct {
	apiKey    string
	fromEmail string
	fromName  string
	host      string
	client    *rest.Client
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.APIKey == "" || strings.ContainsAny(cfg.APIKey, " \t\r\n") {
		return nil, errors.New("validating config: APIKey must be non-empty and contain no whitespace")
	}
	if !validAddress(cfg.FromEmail) {
		return nil, fmt.Errorf("validating config: FromEmail %q is not a bare email address", cfg.FromEmail)
	}
	base, err := url.Parse(cmp.Or(cfg.BaseURL, DefaultBaseURL))
	if err != nil {
		return nil, fmt.Errorf("parsing BaseURL: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("validating config: BaseURL %q must be an http(s) origin with an optional path", cfg.BaseURL)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	return &Sender{
		apiKey:    cfg.APIKey,
		fromEmail: cfg.FromEmail,
		fromName:  cfg.FromName,
		host:      strings.TrimSuffix(base.String(), "/"),
		client:    &rest.Client{HTTPClient: hc},
	}, nil
}

func validAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// Send asks SendGrid to send m. On failure the error is a *ProviderError when
// SendGrid answered, wraps ErrInvalidMessage when m was rejected locally, and
// satisfies errors.Is(err, ErrOutcomeUnknown) when the email may have been
// accepted anyway. Content rules (subject, bodies, reserved headers) are left
// to SendGrid, the authority on them; its 400 answers are permanent errors.
func (s *Sender) Send(ctx context.Context, m Message) (Result, error) {
	if m.ToEmail == "" {
		return Result{}, fmt.Errorf("sending email: %w: ToEmail is required", ErrInvalidMessage)
	}
	body, err := json.Marshal(s.build(m))
	if err != nil {
		return Result{}, fmt.Errorf("encoding email: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("sending email: %w", err)
	}

	req := sendgrid.GetRequest(s.apiKey, "/v3/mail/send", s.host)
	req.Method = rest.Post
	req.Body = body
	resp, err := s.client.SendWithContext(ctx, req)
	if err := check(resp, err); err != nil {
		return Result{}, fmt.Errorf("sending email: %w", err)
	}
	return Result{ProviderID: http.Header(resp.Headers).Get("X-Message-Id")}, nil
}

// build assembles the v3 body with sendgrid-go's helpers. Custom args go on
// the personalization, where the spec types them as an object (its
// message-level custom_args is typed as a string).
func (s *Sender) build(m Message) *sgmail.SGMailV3 {
	p := sgmail.NewPersonalization()
	p.AddTos(sgmail.NewEmail(m.ToName, m.ToEmail))
	for k, v := range m.CustomArgs {
		p.SetCustomArg(k, v)
	}
	msg := sgmail.NewV3Mail()
	msg.SetFrom(sgmail.NewEmail(s.fromName, s.fromEmail))
	msg.Subject = m.Subject
	msg.AddPersonalizations(p)
	if m.Text != "" {
		msg.AddContent(sgmail.NewContent("text/plain", m.Text))
	}
	if m.HTML != "" {
		msg.AddContent(sgmail.NewContent("text/html", m.HTML))
	}
	for k, v := range m.Headers {
		msg.SetHeader(k, v)
	}
	return msg
}

// FindSent searches Email Activity for the newest email whose custom arg
// customArgKey equals value, and returns its msg_id (which starts with the
// X-Message-Id Send returned). It is how a caller resolves
// ErrOutcomeUnknown before retrying.
//
// Email Activity is a paid add-on and eventually consistent: an accepted
// email can take a while to become searchable, so "not found" shortly after
// an unknown outcome is weak evidence.
func (s *Sender) FindSent(ctx context.Context, customArgKey, value string) (msgID string, found bool, err error) {
	if !customArgKeyPattern.MatchString(customArgKey) {
		return "", false, fmt.Errorf("finding sent email: %w: custom arg key %q must match %s", ErrInvalidMessage, customArgKey, customArgKeyPattern)
	}
	if value == "" || strings.ContainsAny(value, `"\`) {
		return "", false, fmt.Errorf("finding sent email: %w: custom arg value must be non-empty without '\"' or '\\'", ErrInvalidMessage)
	}
	if err := ctx.Err(); err != nil {
		return "", false, fmt.Errorf("finding sent email: %w", err)
	}

	req := sendgrid.GetRequest(s.apiKey, "/v3/messages", s.host)
	req.Method = rest.Get
	req.QueryParams = map[string]string{
		"query": fmt.Sprintf(`unique_args['%s']="%s"`, customArgKey, value),
		"limit": strconv.Itoa(activitySearchLimit),
	}
	resp, err := s.client.SendWithContext(ctx, req)
	if err := check(resp, err); err != nil {
		return "", false, fmt.Errorf("finding sent email: %w", err)
	}
	var page struct {
		Messages []struct {
			MsgID string `json:"msg_id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil {
		return "", false, fmt.Errorf("decoding email activity: %w", err)
	}
	for _, m := range page.Messages {
		if m.MsgID != "" {
			return m.MsgID, true, nil
		}
	}
	return "", false, nil
}

// check turns a sendgrid-go outcome into nil, a *ProviderError or an
// ErrOutcomeUnknown error.
func check(resp *rest.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The answer's status is decisive; a body cut short does not undo
		// an acceptance.
		return nil
	}
	pe := &ProviderError{
		HTTPStatus: resp.StatusCode,
		RetryAfter: retryAfter(http.Header(resp.Headers), time.Now()),
	}
	var doc struct {
		Errors []struct {
			Message string `json:"message"`
			Field   any    `json:"field"`
		} `json:"errors"`
	}
	// A body that is not SendGrid's error document (a proxy's HTML page)
	// still leaves the status to classify by.
	if json.Unmarshal([]byte(resp.Body), &doc) == nil {
		for _, e := range doc.Errors {
			field, _ := e.Field.(string)
			pe.Errors = append(pe.Errors, ErrorDetail{Message: e.Message, Field: field})
		}
	}
	return pe
}

// retryAfter reads Retry-After (delay-seconds or HTTP-date) and falls back to
// X-RateLimit-Reset (Unix time), which SendGrid documents for rate limits.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			return max(time.Duration(secs)*time.Second, 0)
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(time.Unix(unix, 0).Sub(now), 0)
		}
	}
	return 0
}
