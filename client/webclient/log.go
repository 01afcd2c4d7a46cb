//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// pageLog is a slog handler that passes each record to the page as
// {ev: "log", text}, which the page writes to its console (the worker's
// own console is not where people and tests look). The client logs no
// secrets nor message texts.
type pageLog struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
	h   slog.Handler
}

func newPageLog(level slog.Level) *slog.Logger {
	l := &pageLog{mu: &sync.Mutex{}, buf: &bytes.Buffer{}}
	l.h = slog.NewTextHandler(l.buf, &slog.HandlerOptions{Level: level})
	return slog.New(l)
}

func (l *pageLog) Enabled(ctx context.Context, lv slog.Level) bool { return l.h.Enabled(ctx, lv) }

func (l *pageLog) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
	if err := l.h.Handle(ctx, r); err != nil {
		return err
	}
	post("log", map[string]any{"text": l.buf.String()})
	return nil
}

func (l *pageLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &pageLog{mu: l.mu, buf: l.buf, h: l.h.WithAttrs(as)}
}

func (l *pageLog) WithGroup(name string) slog.Handler {
	return &pageLog{mu: l.mu, buf: l.buf, h: l.h.WithGroup(name)}
}
