package clerkapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrThrottled means the process's Backend API budget (CLERK_API_RATE, or
// the pause a 429 asked for) had nothing to spend before the caller's
// deadline, so the request was not sent. RetryAfter tells how long until
// budget frees up. It wraps ErrUnavailable, so it is retryable.
var ErrThrottled = fmt.Errorf("%w: request budget exhausted", ErrUnavailable)

// MaxPause caps how long one 429's Retry-After holds every caller back.
const MaxPause = 10 * time.Minute

// defaultPause is the pause after a 429 without a usable Retry-After:
// Clerk's windows are seconds long.
const defaultPause = time.Second

// Budget is one process's share of Clerk's Backend API rate limit: a token
// bucket of CLERK_API_RATE, and a pause, set by Clerk's 429, that holds back
// every caller until its Retry-After has passed. Every Client sharing a
// Budget spends from it; a nil *Budget is unlimited.
type Budget struct {
	limiter   *rate.Limiter
	throttled func()

	mu    sync.Mutex
	until time.Time // no request is sent before this
}

// NewBudget allows requests calls per per: a burst of requests, refilled
// evenly. requests < 1 or per <= 0 leaves the rate unlimited (the 429 pause
// still applies). throttled, when not nil, is called for each call refused
// for budget (a metric).
func NewBudget(requests int, per time.Duration, throttled func()) *Budget {
	limit := rate.Inf
	if requests > 0 && per > 0 {
		limit = rate.Limit(float64(requests) / per.Seconds())
	}
	return &Budget{limiter: rate.NewLimiter(limit, max(requests, 1)), throttled: throttled}
}

type maxWaitKey struct{}

// WithMaxBudgetWait bounds how long each Backend API call made with ctx
// waits for budget to d (ctx's own deadline bounds it too): a caller that
// answers a person gives up early rather than queue behind a listing.
func WithMaxBudgetWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, maxWaitKey{}, d)
}

// wait blocks until one request may be sent: after any pause, with a token
// from the bucket. When that would pass the caller's deadline it returns at
// once an error wrapping ErrThrottled.
func (b *Budget) wait(ctx context.Context) error {
	if b == nil {
		return nil
	}
	deadline, bounded := ctx.Deadline()
	if d, ok := ctx.Value(maxWaitKey{}).(time.Duration); ok && (!bounded || time.Now().Add(d).Before(deadline)) {
		deadline, bounded = time.Now().Add(d), true
	}
	if err := b.waitPause(ctx, deadline, bounded); err != nil {
		return err
	}
	r := b.limiter.Reserve()
	if delay := r.Delay(); delay > 0 {
		if bounded && time.Now().Add(delay).After(deadline) {
			r.Cancel()
			return b.refuse(delay)
		}
		if err := sleep(ctx, delay); err != nil {
			r.Cancel()
			return err
		}
	}
	// A 429 may have arrived while this caller waited for its token.
	return b.waitPause(ctx, deadline, bounded)
}

// waitPause waits out the pause a 429 set, which may grow meanwhile.
func (b *Budget) waitPause(ctx context.Context, deadline time.Time, bounded bool) error {
	for {
		b.mu.Lock()
		until := b.until
		b.mu.Unlock()
		now := time.Now()
		if !now.Before(until) {
			return nil
		}
		if bounded && until.After(deadline) {
			return b.refuse(until.Sub(now))
		}
		if err := sleep(ctx, until.Sub(now)); err != nil {
			return err
		}
	}
}

// pause holds every caller back for d (Clerk's Retry-After), capped at
// MaxPause; a pause never shortens one already set.
func (b *Budget) pause(d time.Duration) {
	if b == nil {
		return
	}
	if d <= 0 {
		d = defaultPause
	}
	until := time.Now().Add(min(d, MaxPause))
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.until) {
		b.until = until
	}
}

func (b *Budget) refuse(wait time.Duration) error {
	if b.throttled != nil {
		b.throttled()
	}
	return &retryAfterError{err: ErrThrottled, wait: wait}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
