package broker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kfake"
)

// LevelTrace is the slog level kfake's debug logs go to, a level below
// slog.LevelDebug, because kfake logs at debug per request.
const LevelTrace = slog.LevelDebug - 4

// slogAdapter is a kfake.Logger writing to slog. kfake formats printf-style,
// so the message is formatted here, and only when the level is enabled.
type slogAdapter struct {
	logger *slog.Logger
}

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var l slog.Level
	switch level {
	case kfake.LogLevelError:
		l = slog.LevelError
	case kfake.LogLevelWarn:
		l = slog.LevelWarn
	case kfake.LogLevelInfo:
		// kfake's info is per request (joins, unhandled requests), which
		// is noise in an application's info log.
		l = slog.LevelDebug
	case kfake.LogLevelDebug:
		l = LevelTrace
	default:
		return
	}
	ctx := context.Background()
	if !a.logger.Enabled(ctx, l) {
		return
	}
	a.logger.LogAttrs(ctx, l, fmt.Sprintf(format, args...), slog.String("component", "kfake"))
}
