package backfill

import (
	"context"
)

// DefaultParallel is how many pages a listing fetches at once. Against
// Clerk's latency (a few hundred milliseconds a page) one request at a time
// leaves the database idle; sixteen in flight fetch 500-user pages faster
// than one writer applies them (BenchmarkBackfill20kLatency: ten were not
// enough), and the shared request budget (CLERK_API_RATE) still bounds the
// rate.
const DefaultParallel = 16

// fetched is one page of a listing, with its place in the listing.
type fetched[P any] struct {
	index int
	page  P
	size  int // objects in the page; fewer than the page size ends the listing
	total int // objects in the whole listing, when Clerk says (-1 when not)
	err   error
}

// fetchPages lists a collection paged by offset with up to parallel
// requests in flight and sends the pages to out in listing order, so the
// writer applies them in order while later pages are fetched. The listing
// ends with the first page shorter than pageSize; pages requested beyond it
// are dropped. Once the listing's total is known (total >= 0, given or
// returned with a page) no more pages are requested than it needs, plus the
// one that shows the end; until then parallel pages are requested at once,
// as waiting for the first page would add a whole round trip to the
// listing, and a short listing costs at most parallel-1 requests for empty
// pages. fetch retries by itself; its error stops the listing.
func fetchPages[P any](ctx context.Context, parallel, pageSize, total int,
	fetch func(ctx context.Context, offset int) (page P, size, total int, err error), out chan<- P) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan fetched[P], parallel)
	inFlight, next, deliver := 0, 0, 0
	end := -1         // index of the last page, once known
	bound := parallel // pages that may be requested for now
	if total >= 0 {
		bound = total/pageSize + 1
	}
	held := map[int]fetched[P]{}
	var failed error // a page's error, returned once the pages before it are delivered
	defer func() {   // let every request still in flight finish before returning
		cancel()
		for ; inFlight > 0; inFlight-- {
			<-results
		}
	}()
	for {
		// Fetching runs ahead of the writer by at most 2*parallel pages, so a
		// slow writer bounds the memory held.
		for inFlight < parallel && end < 0 && failed == nil && next < bound && next < deliver+2*parallel {
			go func(index int) {
				r := fetched[P]{index: index}
				r.page, r.size, r.total, r.err = fetch(ctx, index*pageSize)
				results <- r
			}(next)
			next++
			inFlight++
		}
		if (end >= 0 || failed != nil) && deliver > end {
			return failed
		}
		// Offer the next page in order to the writer while still taking
		// results, so requests go on while the writer is busy.
		var send chan<- P
		var page P
		if p, ok := held[deliver]; ok {
			send, page = out, p.page
		}
		select {
		case send <- page:
			delete(held, deliver)
			deliver++
			continue
		case r := <-results:
			inFlight--
			if failed != nil && r.index > end {
				continue // past a failed page: dropped
			}
			if r.err != nil && (end < 0 || r.index <= end) {
				failed, end = r.err, r.index-1
				continue
			}
			switch {
			case r.size < pageSize && (end < 0 || r.index < end):
				end = r.index
			case r.size == pageSize && r.total >= 0:
				// A full page: the listing needs total/pageSize+1 pages, or one
				// more than this one if it grew since.
				bound = max(r.total/pageSize+1, r.index+2)
			case r.size == pageSize:
				bound = max(bound, r.index+1+parallel)
			}
			if end < 0 || r.index <= end {
				held[r.index] = r
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// eachParallel calls fn for every item with up to parallel calls at once,
// and returns the first error fn returned (after the calls in flight end).
func eachParallel[T any](parent context.Context, parallel int, items []T, fn func(ctx context.Context, item T) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(items))
	for _, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		go func() {
			defer func() { <-sem }()
			if err := fn(ctx, item); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	for range parallel { // wait for the calls in flight
		sem <- struct{}{}
	}
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return parent.Err()
}
