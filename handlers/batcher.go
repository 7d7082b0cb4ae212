package handlers

import (
	"context"
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
	db      *gorm.DB
	timeout time.Duration
	group   coalescer[models.Event, models.EventResult]
}

type pending = call[models.Event, models.EventResult]

// newBatcher processes at most maxBatch events per transaction, with up to
// workers transactions in flight, each bounded by timeout.
func newBatcher(db *gorm.DB, maxBatch, workers int, timeout time.Duration) *batcher {
	b := &batcher{db: db, timeout: timeout}
	b.group = coalescer[models.Event, models.EventResult]{max: maxBatch, workers: workers, run: b.process}
	return b
}

// Submit processes ev as models.ProcessEvent does, possibly in one transaction with
// other events. If ctx ends first it returns ctx's error; the event may
// still commit, and a redelivery then answers EventDuplicate.
func (b *batcher) Submit(ctx context.Context, ev models.Event) (models.EventResult, error) {
	return b.group.do(ctx, ev)
}

// process commits a batch; if it fails, each event is tried on its own, so
// one event the database refuses cannot fail the others with it.
func (b *batcher) process(batch []*pending) {
	evs := make([]models.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.req
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
			p.answer(models.EventResult{}, err)
		} else {
			p.answer(res[i], nil)
		}
	}
}
