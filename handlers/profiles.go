package handlers

import (
	"context"
	"sync"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
)

// profileReader coalesces the reads of concurrent login-time syncs: a read
// that arrives while others are in flight joins the next batch, one
// models.FindProfiles for up to maxRead users. Every read still happens
// after its request arrived, so nothing is served from a cache (the
// application may change a tier at any time). Alone, a read is its own
// batch and waits for nothing.
type profileReader struct {
	db      *gorm.DB
	maxRead int
	workers int

	mu      sync.Mutex
	queue   []*profileRead
	running int
}

type profileRead struct {
	id      string
	profile models.Profile
	err     error
	done    chan struct{}
}

func newProfileReader(db *gorm.DB, maxRead, workers int) *profileReader {
	return &profileReader{db: db, maxRead: maxRead, workers: workers}
}

// find reads the user's profile as models.FindProfiles does.
func (r *profileReader) find(ctx context.Context, id string) (models.Profile, error) {
	p := &profileRead{id: id, done: make(chan struct{})}
	r.mu.Lock()
	r.queue = append(r.queue, p)
	if r.running < r.workers {
		r.running++
		go r.drain()
	}
	r.mu.Unlock()
	select {
	case <-p.done:
		return p.profile, p.err
	case <-ctx.Done():
		return models.Profile{}, ctx.Err()
	}
}

func (r *profileReader) drain() {
	for {
		r.mu.Lock()
		n := min(len(r.queue), r.maxRead)
		if n == 0 {
			r.running--
			r.mu.Unlock()
			return
		}
		batch := r.queue[:n:n]
		r.queue = r.queue[n:]
		r.mu.Unlock()
		r.read(batch)
	}
}

func (r *profileReader) read(batch []*profileRead) {
	ctx, cancel := context.WithTimeout(context.Background(), DBTimeout)
	defer cancel()
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id
	}
	found, err := models.FindProfiles(ctx, r.db, ids)
	for _, p := range batch {
		profile, ok := found[p.id]
		switch {
		case err != nil:
			p.err = err
		case !ok:
			p.err = models.ErrNotFound
		default:
			p.profile = profile
		}
		close(p.done)
	}
}
