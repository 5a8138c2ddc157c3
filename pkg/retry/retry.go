// Package retry runs an operation again, with capped exponential backoff and jitter,
// until it succeeds, says it is permanent, or the context ends.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff with full jitter.
type Backoff struct {
	// Initial is the first delay (default 100ms).
	Initial time.Duration
	// Max caps the delay (default 10s).
	Max time.Duration
}

// Delay returns the delay before attempt n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	initial, maxDelay := b.Initial, b.Max
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 10 * time.Second
	}
	d := initial
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	// Half fixed, half random: spread retries without ever retrying at once.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Do calls op until it returns nil or a Permanent error, or ctx ends. onRetry, when not
// nil, sees each failure and the delay before the next attempt.
func Do(ctx context.Context, b Backoff, op func(ctx context.Context) error, onRetry func(err error, attempt int, delay time.Duration)) error {
	for attempt := 0; ; attempt++ {
		err := op(ctx)
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		d := b.Delay(attempt)
		if onRetry != nil {
			onRetry(err, attempt, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}
