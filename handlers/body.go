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

// bodyChunk is what a body may hold before its first bytes arrive; past it
// the buffer grows (doubling, up to the announced length) only as bytes
// come, so a connection that announces 1 MiB and sends nothing holds 4 KiB
// of the budget, not 1 MiB.
const bodyChunk = 4 << 10

// bodyJump is the size past which the buffer takes the rest of the
// announced length at once: a flood must send this much per connection
// before it holds the full length.
const bodyJump = 256 << 10

// readBody reads at most limit bytes into a buffer whose size is spent from
// the body budget as bytes arrive, within bodyReadTimeout. A larger body is
// answered 413, a full budget 503 with Retry-After, a body too slow to
// arrive 408. The caller calls release once it no longer needs the body.
func (s *server) readBody(c echo.Context, limit int64) (body []byte, release func(), err error) {
	req := c.Request()
	defer func() {
		if err != nil {
			// Close the connection after the answer: net/http would otherwise
			// drain the unread body first, waiting on a stalled sender.
			c.Response().Header().Set(echo.HeaderConnection, "close")
		}
	}()
	most := limit // unknown length (chunked): the most it may be
	if req.ContentLength > limit {
		return nil, func() {}, tooLarge()
	} else if req.ContentLength >= 0 {
		most = req.ContentLength
	}
	// Not supported by test recorders; a real connection always is. Once
	// the body is in, the deadline is lifted again: net/http's background
	// read (which notices a client hanging up) would otherwise hit it while
	// the handler still works and cancel the request.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	r := &budgetedBody{budget: s.bodies, ctx: req.Context(), r: http.MaxBytesReader(c.Response(), req.Body, limit), most: most}
	body, err = r.read(req.ContentLength >= 0)
	_ = rc.SetReadDeadline(time.Time{})
	release = func() { s.bodies.release(r.held) }
	if err != nil {
		release()
		if errors.Is(err, errBudget) {
			c.Response().Header().Set("Retry-After", "1")
		}
		return nil, func() {}, err
	}
	return body, release, nil
}

// errBudget is a body refused because the budget stayed full for bodyWait.
// Shedding load is expected under a flood: a warning, not an alert per request.
var errBudget = &apiError{status: http.StatusServiceUnavailable, message: "server busy, retry later", quiet: true}

// budgetedBody reads a body of at most most bytes, growing its buffer only
// as bytes arrive and holding held bytes of budget for it.
type budgetedBody struct {
	budget *bodyBudget
	ctx    context.Context
	r      io.Reader
	most   int64
	held   int64
	buf    []byte
}

// read fills the buffer until EOF. With exact set the body must be most
// bytes long (the announced length); otherwise it may be shorter, and
// anything past most is too large.
func (b *budgetedBody) read(exact bool) ([]byte, error) {
	for {
		if len(b.buf) == cap(b.buf) {
			if int64(cap(b.buf)) == b.most {
				return b.finish(exact)
			}
			if err := b.grow(); err != nil {
				return nil, err
			}
		}
		n, err := b.r.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		if err == io.EOF {
			if exact && int64(len(b.buf)) < b.most {
				return nil, readError(io.ErrUnexpectedEOF)
			}
			return b.buf, nil
		}
		if err != nil {
			return nil, readError(err)
		}
	}
}

// grow doubles the buffer (from bodyChunk, up to most), first taking the
// extra bytes from the budget.
func (b *budgetedBody) grow() error {
	size := min(max(bodyChunk, 2*int64(cap(b.buf))), b.most)
	if size >= bodyJump {
		// A sender that has sent this much is sending: take the rest at
		// once, so a 1 MiB body leaves little garbage behind (doubling all
		// the way made the peak RSS of 256 stalled deliveries 30 % higher).
		size = b.most
	}
	extra := size - int64(cap(b.buf))
	if !b.budget.acquire(b.ctx, extra, bodyWait) {
		return errBudget
	}
	b.held += extra
	buf := make([]byte, len(b.buf), size)
	copy(buf, b.buf)
	b.buf = buf
	return nil
}

// finish is reached with the buffer full: an announced length is complete;
// otherwise the body must end here (MaxBytesReader errs if not).
func (b *budgetedBody) finish(exact bool) ([]byte, error) {
	if exact {
		return b.buf, nil
	}
	if _, err := b.r.Read(make([]byte, 1)); err != io.EOF {
		if err == nil {
			return nil, tooLarge()
		}
		return nil, readError(err)
	}
	return b.buf, nil
}

// readError maps a failed body read to its answer.
func readError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fail(http.StatusRequestTimeout, "request body not received in time", err)
	}
	return fail(http.StatusBadRequest, "could not read request body", err)
}

// tooLarge answers as the body-limit middleware did before the routes
// bounded their bodies themselves, whatever the limit.
func tooLarge() error {
	return fail(http.StatusRequestEntityTooLarge, "request body too large", nil)
}
