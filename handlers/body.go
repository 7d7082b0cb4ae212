package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Limits on request bodies held in memory, so stalled or flooding senders
// cannot grow the process: every body is read into a buffer reserved from
// one budget, and must arrive within bodyReadTimeout.
const (
	// bodyBudgetBytes is the most body bytes held across all requests in flight.
	bodyBudgetBytes = 64 << 20
	// bodyWait is how long a request waits for budget before it is answered 503.
	bodyWait = 2 * time.Second
	// bodyReadTimeout bounds reading one body; Svix sends it at once.
	bodyReadTimeout = 5 * time.Second
)

// bodyBudget is a counting semaphore of bytes.
type bodyBudget struct {
	mu      sync.Mutex
	free    int64
	changed chan struct{} // closed and replaced on every release
}

func newBodyBudget(n int64) *bodyBudget {
	return &bodyBudget{free: n, changed: make(chan struct{})}
}

// acquire reserves n bytes, waiting up to wait; false means it could not.
func (b *bodyBudget) acquire(ctx context.Context, n int64, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return true
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (b *bodyBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	close(b.changed)
	b.changed = make(chan struct{})
}

// readBody reads at most limit bytes into a buffer reserved from the body
// budget, within bodyReadTimeout. A larger body is answered 413, a full
// budget 503 with Retry-After, a body too slow to arrive 408. The caller
// calls release once it no longer needs the body.
func (s *server) readBody(c echo.Context, limit int64) (body []byte, release func(), err error) {
	req := c.Request()
	defer func() {
		if err != nil {
			// Close the connection after the answer: net/http would otherwise
			// drain the unread body first, waiting on a stalled sender.
			c.Response().Header().Set(echo.HeaderConnection, "close")
		}
	}()
	size := limit // unknown length (chunked): reserve the most it may be
	if req.ContentLength > limit {
		return nil, func() {}, tooLarge()
	} else if req.ContentLength >= 0 {
		size = req.ContentLength
	}
	if !s.bodies.acquire(req.Context(), size, bodyWait) {
		c.Response().Header().Set("Retry-After", "1")
		// Shedding load is expected under a flood: a warning, not an alert per request.
		return nil, func() {}, &apiError{status: http.StatusServiceUnavailable, message: "server busy, retry later", quiet: true}
	}
	release = func() { s.bodies.release(size) }
	// Not supported by test recorders; a real connection always is. Once
	// the body is in, the deadline is lifted again: net/http's background
	// read (which notices a client hanging up) would otherwise hit it while
	// the handler still works and cancel the request.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err = readInto(http.MaxBytesReader(c.Response(), req.Body, limit), make([]byte, size), req.ContentLength >= 0)
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		release()
		return nil, func() {}, err
	}
	return body, release, nil
}

// readInto fills buf from r. With exact set buf is the announced length
// and must be filled; otherwise the body may be shorter than buf, and
// anything past it is too large.
func readInto(r io.Reader, buf []byte, exact bool) ([]byte, error) {
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil && !exact:
		// The buffer is full: the body must end here (MaxBytesReader errs if not).
		if _, err = r.Read(make([]byte, 1)); err == io.EOF {
			err = nil
		}
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && !exact:
		err = nil // a body shorter than the most it may be
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return buf[:n], nil
	case errors.As(err, &tooBig):
		return nil, tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fail(http.StatusRequestTimeout, "request body not received in time", err)
	}
	return nil, fail(http.StatusBadRequest, "could not read request body", err)
}

// tooLarge answers as the body-limit middleware did before the routes
// bounded their bodies themselves, whatever the limit.
func tooLarge() error {
	return fail(http.StatusRequestEntityTooLarge, "request body too large", nil)
}
