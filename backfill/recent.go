package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Recent applies every user Clerk updated at or after since: it lists users
// most recently updated first, one page at a time, and stops after the
// first page that reaches a user updated before since (every later page
// holds only older ones) or ends the listing. It is reconcile's
// incremental pass and `usersync backfill --since`. When nothing changed
// it costs one request and no row write (rule 7). A user updated while it
// runs moves to the front of the listing and may be missed: its updated_at
// is after the pass began, so the next pass, which looks back to this
// one's start, finds it.
func Recent(ctx context.Context, db *gorm.DB, clerk Clerk, since time.Time, opts Options) (Summary, error) {
	r := newRunner(db, clerk, opts)
	start := time.Now()
	defer func() { r.sum.Elapsed = time.Since(start) }()
	if err := r.refetchFutureDated(ctx, start); err != nil {
		return r.sum, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	for offset := 0; ; {
		var page clerkapi.Page[models.Snapshot]
		err := r.withRetry(ctx, "list recent users", func() (err error) {
			page, err = r.clerk.ListRecentUsers(ctx, offset, r.opts.PageSize)
			return err
		})
		if err != nil {
			return r.sum, fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		if err := r.apply(ctx, page); err != nil {
			return r.sum, fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		if lastRecentPage(page, r.opts.PageSize, since.UnixMilli()) {
			return r.sum, nil
		}
		offset += page.Size
	}
}

// maxFutureDated bounds the rows one pass fetches by id.
const maxFutureDated = 100

// refetchFutureDated fetches by id the users whose row holds an updated_at
// beyond the clock's bound (rule 11): their real updated_at may be older
// than since, so the listing would not reach them, and no webhook may
// overwrite them. Users Clerk no longer has are left to the full pass's
// prune.
func (r *runner) refetchFutureDated(ctx context.Context, now time.Time) error {
	ids, err := models.FutureDatedUsers(ctx, r.db, now, maxFutureDated)
	if err != nil || len(ids) == 0 {
		return err
	}
	page := clerkapi.Page[models.Snapshot]{}
	for _, id := range ids {
		var s models.Snapshot
		err := r.withRetry(ctx, "get user", func() (err error) {
			s, err = r.clerk.GetUser(ctx, id)
			return err
		})
		switch {
		case errors.Is(err, clerkapi.ErrUserNotFound):
			continue
		case err != nil:
			return err
		}
		page.Snapshots = append(page.Snapshots, s)
		page.Size++
	}
	r.opts.Log.Warn("fetched users whose row was dated beyond the clock's bound", "users", page.Size)
	return r.apply(ctx, page)
}

// lastRecentPage reports whether a page of the most-recently-updated-first
// listing is the last one a pass back to since needs: it is short (the end
// of the listing), or its oldest user was updated before since. A page
// whose users all have updated_at equal to since does not end the pass:
// the next page may hold more users updated at that same instant.
func lastRecentPage(page clerkapi.Page[models.Snapshot], pageSize int, since int64) bool {
	if page.Size < pageSize {
		return true
	}
	for _, s := range page.Snapshots {
		if s.UpdatedAt < since {
			return true
		}
	}
	return false
}
