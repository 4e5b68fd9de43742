// Package sms sends ticket-offer text messages through Twilio's Programmable
// Messaging API using the official twilio-go client.
//
// twilio-go neither accepts a base URL nor a context, so each call builds a
// short-lived client whose HTTP transport (1) points api.twilio.com requests
// at Config.BaseURL when one is set (the local sandbox in tests), and (2)
// binds every request to the caller's context, so cancellation and deadlines
// abort the HTTP exchange itself.
package sms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// DefaultBaseURL is Twilio's REST API origin.
const DefaultBaseURL = "https://api.twilio.com"

// DefaultTimeout bounds each HTTP exchange when Config.HTTPClient is nil. It
// matches twilio-go's own default.
const DefaultTimeout = 10 * time.Second

// MaxValidityPeriod is the longest ValidityPeriod Twilio accepts.
const MaxValidityPeriod = 36000 * time.Second

var (
	// ErrOutcomeUnknown marks errors after which Twilio may or may not have
	// accepted the message: network failures, timeouts, cancellation after
	// the request left, 5xx answers and unreadable success responses. Check
	// FindSent before retrying such a send.
	ErrOutcomeUnknown = errors.New("outcome unknown")

	// ErrInvalidMessage marks messages rejected before any request was
	// made. Retrying them cannot succeed.
	ErrInvalidMessage = errors.New("invalid message")
)

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	e164Pattern       = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// twilio-go refuses credentials with other characters before sending.
	alphanumericPattern = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
)

// Config configures a Sender.
type Config struct {
	// AccountSID is the Twilio account ("AC" + 32 hex digits).
	AccountSID string
	// AuthToken is the account's auth token.
	AuthToken string
	// From is the sender: an E.164 phone number owned by the account, or a
	// Messaging Service SID ("MG" + 32 hex digits).
	From string
	// BaseURL is the API origin. Empty means DefaultBaseURL; tests point it
	// at a sandbox such as http://127.0.0.1:PORT.
	BaseURL string
	// HTTPClient supplies the transport and timeout. Optional; its
	// CheckRedirect and Jar are not used (Twilio's API never redirects).
	HTTPClient *http.Client
}

// Message is one text message to send.
type Message struct {
	// To is the recipient's phone number in E.164 format. Twilio is the
	// authority on which numbers are valid, so it is only checked for
	// presence here.
	To string
	// Body is the text; Twilio accepts up to 1,600 characters.
	Body string
	// ValidityPeriod, if non-zero, is how long Twilio may keep the message
	// queued before dropping it; an offer that expires should not arrive
	// late. Rounded up to whole seconds, at most MaxValidityPeriod.
	ValidityPeriod time.Duration
	// StatusCallback, if set, is the URL Twilio posts delivery updates to.
	StatusCallback string
}

// Result describes an accepted message.
type Result struct {
	// ProviderID is Twilio's message SID.
	ProviderID string
	// Status is Twilio's initial status, normally "queued" (or "accepted"
	// when sending through a Messaging Service).
	Status string
	// Segments is the number of SMS segments billed; Twilio reports 0 for
	// Messaging Service sends until a sender is picked.
	Segments int
}

// ProviderError is an error answer from Twilio.
type ProviderError struct {
	// HTTPStatus is the HTTP status code of the answer.
	HTTPStatus int
	// Code is Twilio's error code (https://www.twilio.com/docs/api/errors),
	// 0 if the answer carried none.
	Code int
	// Message is Twilio's error message.
	Message string
	// MoreInfo links to Twilio's documentation of Code.
	MoreInfo string
	// RetryAfter is the delay Twilio asked for with a Retry-After header on
	// 429 or 503 answers, 0 if none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *ProviderError) Error() string {
	return fmt.Sprintf("twilio answered HTTP %d with error %d: %s", e.HTTPStatus, e.Code, e.Message)
}

// Permanent reports whether repeating the same request is pointless: invalid
// or unreachable numbers (21211, 21614), opted-out recipients (21610),
// authentication and other validation failures. Rate limiting (429) and
// server errors (5xx) are transient.
func (e *ProviderError) Permanent() bool {
	switch e.Code {
	case 21211, 21610, 21614:
		return true
	case 20429, 20500, 20503:
		return false
	}
	switch {
	case e.HTTPStatus == http.StatusTooManyRequests, e.HTTPStatus == http.StatusRequestTimeout, e.HTTPStatus >= 500:
		return false
	}
	return e.HTTPStatus >= 400
}

// Is makes errors.Is(err, ErrOutcomeUnknown) true for 5xx answers: a server
// error does not prove the message was not created.
func (e *ProviderError) Is(target error) bool {
	return target == ErrOutcomeUnknown && e.HTTPStatus >= 500
}

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	accountSID string
	authToken  string
	from       string
	useService bool
	target     *url.URL // nil when talking to Twilio itself
	base       http.RoundTripper
	timeout    time.Duration
}

// New validates cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("validating config: AccountSID must be \"AC\" followed by 32 hex digits")
	}
	if !alphanumericPattern.MatchString(cfg.AuthToken) {
		return nil, errors.New("validating config: AuthToken must be a non-empty alphanumeric string")
	}
	useService := serviceSIDPattern.MatchString(cfg.From)
	if !useService && !e164Pattern.MatchString(cfg.From) {
		return nil, errors.New("validating config: From must be an E.164 number or a Messaging Service SID")
	}

	base, err := url.Parse(cmp.Or(cfg.BaseURL, DefaultBaseURL))
	if err != nil {
		return nil, fmt.Errorf("parsing BaseURL: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("validating config: BaseURL %q must be an http(s) origin with an optional path", cfg.BaseURL)
	}
	var target *url.URL
	if base.String() != DefaultBaseURL {
		target = base
	}

	s := &Sender{
		accountSID: cfg.AccountSID,
		authToken:  cfg.AuthToken,
		from:       cfg.From,
		useService: useService,
		target:     target,
		base:       http.DefaultTransport,
		timeout:    DefaultTimeout,
	}
	if cfg.HTTPClient != nil {
		s.base = cmp.Or[http.RoundTripper](cfg.HTTPClient.Transport, http.DefaultTransport)
		s.timeout = cfg.HTTPClient.Timeout
	}
	return s, nil
}

// api returns a twilio-go Messages API bound to ctx, and the exchange record
// its transport fills in.
func (s *Sender) api(ctx context.Context) (*openapi.ApiService, *exchange) {
	ex := &exchange{}
	hc := &http.Client{
		Transport: &transport{ctx: ctx, base: s.base, target: s.target, ex: ex, timeout: s.timeout},
		// Twilio never redirects API calls; following one could leak the
		// basic-auth credentials to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &client.Client{
		Credentials: client.NewCredentials(s.accountSID, s.authToken),
		HTTPClient:  hc,
	}
	c.SetAccountSid(s.accountSID)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}).Api, ex
}

// Send asks Twilio to send m. On failure the error is a *ProviderError when
// Twilio answered, wraps ErrInvalidMessage when m was rejected locally, and
// satisfies errors.Is(err, ErrOutcomeUnknown) when the message may have been
// created anyway.
func (s *Sender) Send(ctx context.Context, m Message) (Result, error) {
	params, err := s.createParams(m)
	if err != nil {
		return Result{}, fmt.Errorf("sending message: %w", err)
	}
	// Nothing has left yet, so a done context means "not sent", not
	// "unknown".
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("sending message: %w", err)
	}

	api, ex := s.api(ctx)
	msg, err := api.CreateMessage(params)
	if err != nil {
		return Result{}, fmt.Errorf("sending message: %w", classify(err, ex))
	}
	if msg.Sid == nil {
		return Result{}, fmt.Errorf("sending message: %w: response carried no sid", ErrOutcomeUnknown)
	}
	res := Result{ProviderID: *msg.Sid}
	if msg.Status != nil {
		res.Status = *msg.Status
	}
	if msg.NumSegments != nil {
		// A malformed count is not worth failing an accepted send over.
		res.Segments, _ = strconv.Atoi(*msg.NumSegments)
	}
	return res, nil
}

func (s *Sender) createParams(m Message) (*openapi.CreateMessageParams, error) {
	if m.To == "" {
		return nil, fmt.Errorf("%w: To is required", ErrInvalidMessage)
	}
	if m.Body == "" {
		return nil, fmt.Errorf("%w: Body is required", ErrInvalidMessage)
	}
	if m.ValidityPeriod < 0 || m.ValidityPeriod > MaxValidityPeriod {
		return nil, fmt.Errorf("%w: ValidityPeriod %s must be between 0 (unset) and %s", ErrInvalidMessage, m.ValidityPeriod, MaxValidityPeriod)
	}
	p := &openapi.CreateMessageParams{}
	p.SetTo(m.To)
	p.SetBody(m.Body)
	if s.useService {
		p.SetMessagingServiceSid(s.from)
	} else {
		p.SetFrom(s.from)
	}
	if m.ValidityPeriod > 0 {
		p.SetValidityPeriod(int((m.ValidityPeriod + time.Second - 1) / time.Second))
	}
	if m.StatusCallback != "" {
		p.SetStatusCallback(m.StatusCallback)
	}
	return p, nil
}

// FindSent looks for a message to the number `to`, sent at or after since,
// whose body contains `contains` (typically a token unique to the offer).
// It is how a caller resolves ErrOutcomeUnknown before retrying.
//
// Any status matches: the question is whether Twilio accepted the earlier
// attempt, not whether it was delivered. Twilio filters by date_sent, so pass
// a since that is earlier than the first attempt by more than any clock skew,
// and note that Twilio may list a message only once it left the queue.
func (s *Sender) FindSent(ctx context.Context, to string, since time.Time, contains string) (sid string, found bool, err error) {
	if to == "" || contains == "" {
		return "", false, fmt.Errorf("finding sent message: %w: to and contains are required", ErrInvalidMessage)
	}
	if err := ctx.Err(); err != nil {
		return "", false, fmt.Errorf("finding sent message: %w", err)
	}
	params := &openapi.ListMessageParams{}
	params.SetTo(to)
	if !s.useService {
		params.SetFrom(s.from)
	}
	params.SetDateSentAfter(since.UTC())
	params.SetPageSize(100)
	// An offer's messages to one fan fit in far fewer; the cap bounds the
	// paging if the filter ever matches a flood.
	params.SetLimit(1000)

	api, ex := s.api(ctx)
	msgs, err := api.ListMessage(params)
	if err != nil {
		return "", false, fmt.Errorf("finding sent message: %w", classify(err, ex))
	}
	for _, m := range msgs {
		if m.Sid == nil || m.Body == nil || m.Direction != nil && !strings.HasPrefix(*m.Direction, "outbound") {
			continue
		}
		if strings.Contains(*m.Body, contains) {
			return *m.Sid, true, nil
		}
	}
	return "", false, nil
}

// classify turns a twilio-go error into a *ProviderError when Twilio
// answered with an error status, or into an ErrOutcomeUnknown error.
func classify(err error, ex *exchange) error {
	status, header := ex.last()
	var tre *client.TwilioRestError
	if errors.As(err, &tre) {
		pe := &ProviderError{
			HTTPStatus: cmp.Or(status, tre.Status),
			Code:       tre.Code,
			Message:    tre.Message,
			MoreInfo:   tre.MoreInfo,
		}
		pe.RetryAfter = retryAfter(header, time.Now())
		return pe
	}
	if status >= 400 {
		// Twilio (or a proxy in front of it) answered with a body twilio-go
		// could not decode, e.g. an HTML 502 page.
		return &ProviderError{
			HTTPStatus: status,
			Message:    http.StatusText(status),
			RetryAfter: retryAfter(header, time.Now()),
		}
	}
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
}

// retryAfter parses a Retry-After header, either delay-seconds or an
// HTTP-date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
