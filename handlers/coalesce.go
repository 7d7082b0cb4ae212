package handlers

import (
	"context"
	"sync"
)

// coalescer runs concurrent requests in shared batches: a request that
// arrives while a batch runs joins the next one (at most max requests), and
// each caller waits until the batch holding its request has run. Alone, a
// request is a batch of one and waits for nothing. The webhook batcher and
// the login-time profileReader are built on it.
type coalescer[Req, Res any] struct {
	max     int
	workers int // batches at once
	// run answers every call of the batch (call.answer).
	run func(batch []*call[Req, Res])

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running int // goroutines draining the queue; none while idle
}

// call is one request waiting for its batch.
type call[Req, Res any] struct {
	ctx  context.Context
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// answer gives the call's caller its result.
func (p *call[Req, Res]) answer(res Res, err error) {
	p.res, p.err = res, err
	close(p.done)
}

// do queues req and waits for its result, or returns ctx's error if ctx
// ends first (the request may still run with its batch).
func (c *coalescer[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	p := &call[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.running < c.workers {
		c.running++
		go c.drain()
	}
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// drain runs batches until the queue is empty, then exits.
func (c *coalescer[Req, Res]) drain() {
	for {
		batch := c.take()
		if batch == nil {
			return
		}
		c.run(batch)
	}
}

// take removes up to max waiting requests whose callers still wait.
func (c *coalescer[Req, Res]) take() []*call[Req, Res] {
	c.mu.Lock()
	defer c.mu.Unlock()
	var batch []*call[Req, Res]
	for len(c.queue) > 0 && len(batch) < c.max {
		p := c.queue[0]
		c.queue = c.queue[1:]
		if err := p.ctx.Err(); err != nil {
			var zero Res
			p.answer(zero, err) // its caller gave up: do not run it unanswered
			continue
		}
		batch = append(batch, p)
	}
	if len(batch) == 0 && len(c.queue) == 0 {
		c.running--
		return nil
	}
	return batch
}
