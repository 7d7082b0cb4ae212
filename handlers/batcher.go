package handlers

import (
	"context"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
)

// batcher lets concurrent webhook deliveries share one transaction: each
// Submit waits until the batch holding its event has committed (or failed),
// so nothing is acknowledged before it is durable. Under light load a batch
// is a single event and nothing waits; under a burst, events that arrive
// while a batch commits form the next one, which saves the per-transaction
// round trips and flushes that bound a one-event-per-transaction design.
type batcher struct {
	db       *gorm.DB
	maxBatch int
	workers  int
	timeout  time.Duration

	mu      sync.Mutex
	queue   []*pending
	running int // goroutines draining the queue; none while idle
}

type pending struct {
	ev   models.Event
	ctx  context.Context
	res  models.EventResult
	err  error
	done chan struct{}
}

// newBatcher processes at most maxBatch events per transaction, with up to
// workers transactions in flight, each bounded by timeout.
func newBatcher(db *gorm.DB, maxBatch, workers int, timeout time.Duration) *batcher {
	return &batcher{db: db, maxBatch: maxBatch, workers: workers, timeout: timeout}
}

// Submit processes ev as models.ProcessEvent does, possibly in one transaction with
// other events. If ctx ends first it returns ctx's error; the event may
// still commit, and a redelivery then answers EventDuplicate.
func (b *batcher) Submit(ctx context.Context, ev models.Event) (models.EventResult, error) {
	p := &pending{ev: ev, ctx: ctx, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.running < b.workers {
		b.running++
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return models.EventResult{}, ctx.Err()
	}
}

// drain processes batches until the queue is empty, then exits.
func (b *batcher) drain() {
	for {
		batch := b.take()
		if batch == nil {
			return
		}
		b.process(batch)
	}
}

// take removes up to maxBatch waiting events whose callers still wait.
func (b *batcher) take() []*pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*pending
	for len(b.queue) > 0 && len(batch) < b.maxBatch {
		p := b.queue[0]
		b.queue = b.queue[1:]
		if p.ctx.Err() != nil {
			p.err = p.ctx.Err() // its caller gave up: do not apply it unacknowledged
			close(p.done)
			continue
		}
		batch = append(batch, p)
	}
	if len(batch) == 0 && len(b.queue) == 0 {
		b.running--
		return nil
	}
	return batch
}

// process commits a batch; if it fails, each event is tried on its own, so
// one event the database refuses cannot fail the others with it.
func (b *batcher) process(batch []*pending) {
	evs := make([]models.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	// The batch gives up with its most impatient caller, so it rarely
	// commits an event whose caller was already answered 503 (and when it
	// does, the redelivery is answered "duplicate").
	deadline := time.Now().Add(b.timeout)
	for _, p := range batch {
		if d, ok := p.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res, err := models.ProcessEvents(ctx, b.db, evs)
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, p := range batch {
			b.process([]*pending{p})
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.res = res[i]
		}
		close(p.done)
	}
}
