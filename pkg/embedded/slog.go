package embedded

import (
	"context"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHandler is a slog.Handler that writes to zap, for mochi-mqtt's logger.
type zapHandler struct {
	log   *zap.Logger
	attrs []zap.Field
}

func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	lvl := zapLevel(r.Level)
	// First start with an empty store: mochi reports the missing $SYS record as an error.
	if strings.HasPrefix(r.Message, "failed to get data") {
		lvl = zapcore.DebugLevel
	}
	if ce := h.log.Check(lvl, r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h zapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		h.attrs = append(h.attrs, zap.Any(a.Key, a.Value.Any()))
	}
	return h
}

func (h zapHandler) WithGroup(name string) slog.Handler {
	h.log = h.log.Named(name)
	return h
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		// mochi is chatty at info (every connection); keep that for debugging.
		return zapcore.DebugLevel
	default:
		return zapcore.DebugLevel - 1
	}
}
