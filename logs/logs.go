// Package logs builds Crescendo's slog loggers: JSON by default, each record
// carrying the request id and event id found in its context, and phone
// numbers and email addresses masked wherever they appear, as a last line of
// defense: code must not log personal data in the first place (a test scans
// an end-to-end run's logs for the fans' contact points).
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	eventIDKey
)

// WithRequestID returns ctx carrying the id of the HTTP request it serves.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithEventID returns ctx carrying the CloudEvents id of the event it handles.
func WithEventID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, eventIDKey, id)
}

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("json" or "text").
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redactAttr}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "json", "":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("LOG_FORMAT: want json or text, got %q", format)
	}
	return slog.New(Handler(h)), nil
}

// Handler wraps h: records get request_id and event_id from their context,
// and their message is masked like the attributes New's handlers mask.
func Handler(h slog.Handler) slog.Handler { return contextHandler{h} }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id, ok := ctx.Value(requestIDKey).(string); ok {
			r.AddAttrs(slog.String("request_id", id))
		}
		if id, ok := ctx.Value(eventIDKey).(string); ok {
			r.AddAttrs(slog.String("event_id", id))
		}
	}
	if masked := Redact(r.Message); masked != r.Message {
		nr := slog.NewRecord(r.Time, r.Level, masked, r.PC)
		r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
		r = nr
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// E.164 numbers (and other long digit runs after a plus) and email addresses.
var (
	phoneRe = regexp.MustCompile(`\+[1-9][0-9 ().-]{6,18}[0-9]`)
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
)

// Redact masks phone numbers and email addresses in s: provider errors quote
// the recipient ("The 'To' number +1415… is not valid"), and such an error
// may reach a log line.
func Redact(s string) string {
	if strings.IndexByte(s, '+') >= 0 {
		s = phoneRe.ReplaceAllString(s, "[phone]")
	}
	if strings.IndexByte(s, '@') >= 0 {
		s = emailRe.ReplaceAllString(s, "[email]")
	}
	return s
}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.ContainsAny(s, "+@") {
			a.Value = slog.StringValue(Redact(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); strings.ContainsAny(s, "+@") {
				a.Value = slog.StringValue(Redact(s))
			}
		}
	}
	return a
}
