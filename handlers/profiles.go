package handlers

import (
	"context"

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
	db    *gorm.DB
	group coalescer[string, models.Profile]
}

func newProfileReader(db *gorm.DB, maxRead, workers int) *profileReader {
	r := &profileReader{db: db}
	r.group = coalescer[string, models.Profile]{max: maxRead, workers: workers, run: r.read}
	return r
}

// find reads the user's profile as models.FindProfiles does.
func (r *profileReader) find(ctx context.Context, id string) (models.Profile, error) {
	return r.group.do(ctx, id)
}

func (r *profileReader) read(batch []*call[string, models.Profile]) {
	ctx, cancel := context.WithTimeout(context.Background(), DBTimeout)
	defer cancel()
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.req
	}
	found, err := models.FindProfiles(ctx, r.db, ids)
	for _, p := range batch {
		profile, ok := found[p.req]
		switch {
		case err != nil:
			p.answer(models.Profile{}, err)
		case !ok:
			p.answer(models.Profile{}, models.ErrNotFound)
		default:
			p.answer(profile, nil)
		}
	}
}
