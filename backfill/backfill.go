// Package backfill imports every Clerk user into the users table through the
// batched form of the one upsert, and can prune users deleted in Clerk.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Clerk is the part of the Backend API a backfill uses.
type Clerk interface {
	ListUsers(ctx context.Context, offset, limit int) (clerkapi.Page, error)
	CountUsers(ctx context.Context) (int, error)
	GetUser(ctx context.Context, id string) (models.Snapshot, error)
	ListOrganizations(ctx context.Context, offset, limit int) (clerkapi.OrgPage, error)
	ListMemberships(ctx context.Context, offset, limit int) (clerkapi.MembershipPage, error)
	GetOrganization(ctx context.Context, id string) error
}

// Options configure one run.
type Options struct {
	PageSize int  // users per request, 1 to clerkapi.MaxPageSize
	DryRun   bool // read everything, write nothing
	Prune    bool // tombstone live rows Clerk confirms deleted
	Retry    Retry
	Progress *Progress // nil: no progress output
	Log      *slog.Logger
	// Sleep waits between retries; nil sleeps (tests record the waits).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Retry bounds how a failing Clerk call is retried: 429 waits as long as
// Retry-After says, a 5xx or a network error waits an exponential backoff.
type Retry struct {
	Attempts int           // calls in all, including the first
	Base     time.Duration // first backoff, doubled each time
	MaxWait  time.Duration // cap on one backoff (not on Retry-After)
}

// DefaultRetry is what usersync backfill uses.
var DefaultRetry = Retry{Attempts: 6, Base: 500 * time.Millisecond, MaxWait: 60 * time.Second}

// maxRetryAfter caps a Retry-After, so a wrong header cannot stall a run for hours.
const maxRetryAfter = 10 * time.Minute

// Summary is what a run did (or, with DryRun, would do): to users in the
// top-level fields, and to organizations and memberships in their own.
type Summary struct {
	Listed, Created, Updated, Unchanged, Stale, Pruned, Errors int
	Elapsed                                                    time.Duration

	Organizations, Memberships Counts
	// OrgsElapsed and MembershipsElapsed are the times each listing took,
	// with its writes.
	OrgsElapsed, MembershipsElapsed time.Duration
}

// OrgsPerSecond and MembershipsPerSecond are the listing-and-applying
// rates of the organization part of the run.
func (s Summary) OrgsPerSecond() float64 { return perSecond(s.Organizations.Listed, s.OrgsElapsed) }

// MembershipsPerSecond: see OrgsPerSecond.
func (s Summary) MembershipsPerSecond() float64 {
	return perSecond(s.Memberships.Listed, s.MembershipsElapsed)
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// UsersPerSecond is the listing-and-applying rate.
func (s Summary) UsersPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Listed) / s.Elapsed.Seconds()
}

func (s *Summary) count(o models.Outcome) {
	switch o {
	case models.Created:
		s.Created++
	case models.Updated:
		s.Updated++
	case models.Unchanged:
		s.Unchanged++
	default: // Stale, or Gone: the row is a tombstone and stays one
		s.Stale++
	}
}

// ErrIncomplete is returned when the listing or a write stopped the run;
// the pages applied before it are committed, and a re-run is safe.
var ErrIncomplete = errors.New("backfill incomplete")

// Run lists every user page by page and applies each page in one
// transaction, fetching the next page while the current one is written,
// then does the same for organizations and memberships. Pruning runs only
// when the listing it prunes by completed without any error.
func Run(ctx context.Context, db *gorm.DB, clerk Clerk, opts Options) (Summary, error) {
	r := runner{db: db, clerk: clerk, opts: opts, listed: map[string]struct{}{},
		listedOrgs: map[string]struct{}{}, listedMems: map[string]struct{}{}}
	if r.opts.Log == nil {
		r.opts.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	if opts.Progress != nil {
		var total int
		err := r.withRetry(ctx, "count users", func() (err error) {
			total, err = clerk.CountUsers(ctx)
			return err
		})
		if err != nil {
			r.opts.Log.Warn("could not count users; progress shows no total", "err", err)
		}
		opts.Progress.Start(total)
	}
	err := r.importAll(ctx)
	if opts.Progress != nil {
		opts.Progress.Finish(r.sum.Listed)
	}
	if err == nil && opts.Prune && r.sum.Errors == 0 {
		err = r.prune(ctx)
	} else if opts.Prune && err == nil {
		r.opts.Log.Warn("not pruning users: some users failed during the listing")
	}
	r.sum.Elapsed = time.Since(start)
	if err == nil {
		err = r.importOrgs(ctx)
		if err == nil && opts.Prune && r.sum.Organizations.Errors+r.sum.Memberships.Errors == 0 {
			err = r.pruneOrgs(ctx, start)
		} else if opts.Prune && err == nil {
			r.opts.Log.Warn("not pruning organizations: some failed during the listings")
		}
	}
	return r.sum, err
}

type runner struct {
	db     *gorm.DB
	clerk  Clerk
	opts   Options
	sum    Summary
	listed map[string]struct{} // ids seen in the listing, for pruning

	listedOrgs, listedMems map[string]struct{}
}

// importAll overlaps listing and writing: a goroutine fetches pages into a
// one-page buffer while this one applies them.
func (r *runner) importAll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan clerkapi.Page, 1)
	listed := make(chan error, 1)
	go func() {
		defer close(pages)
		listed <- r.list(ctx, pages)
	}()
	for page := range pages {
		if err := r.apply(ctx, page); err != nil {
			cancel()
			for range pages { // let the lister finish
			}
			return fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
	}
	if err := <-listed; err != nil {
		return fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	return nil
}

func (r *runner) list(ctx context.Context, pages chan<- clerkapi.Page) error {
	for offset := 0; ; {
		var page clerkapi.Page
		err := r.withRetry(ctx, "list users", func() error {
			var err error
			page, err = r.clerk.ListUsers(ctx, offset, r.opts.PageSize)
			return err
		})
		if err != nil {
			return err
		}
		select {
		case pages <- page:
		case <-ctx.Done():
			return ctx.Err()
		}
		if page.Size < r.opts.PageSize {
			return nil
		}
		offset += page.Size
	}
}

func (r *runner) apply(ctx context.Context, page clerkapi.Page) error {
	for _, err := range page.Invalid {
		r.sum.Errors++
		r.opts.Log.Error("user could not be mapped", "err", err)
	}
	r.sum.Listed += page.Size
	for _, s := range page.Snapshots {
		r.listed[s.ID] = struct{}{}
	}
	applyFn := models.ApplySnapshots
	if r.opts.DryRun {
		applyFn = models.DryRunSnapshots
	}
	outcomes, err := applyFn(ctx, r.db, page.Snapshots, models.SourceBackfill)
	if err != nil {
		return err
	}
	for _, o := range outcomes {
		r.sum.count(o)
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Update(r.sum.Listed)
	}
	return nil
}

// prune tombstones live rows the listing did not return, each only after
// Clerk answers 404 for it: a user created after the listing began is
// absent from it but still exists, and must not be pruned.
func (r *runner) prune(ctx context.Context) error {
	var missing []string
	err := models.EachLiveUserID(ctx, r.db, func(id string) error {
		if _, ok := r.listed[id]; !ok {
			missing = append(missing, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range missing {
		err := r.withRetry(ctx, "get user", func() error {
			_, err := r.clerk.GetUser(ctx, id)
			return err
		})
		switch {
		case errors.Is(err, clerkapi.ErrUserNotFound):
			if err := r.tombstone(ctx, id); err != nil {
				return err
			}
		case err != nil:
			r.sum.Errors++
			r.opts.Log.Error("could not confirm deletion", "user_id", id, "err", err)
		}
	}
	return nil
}

func (r *runner) tombstone(ctx context.Context, id string) error {
	if !r.opts.DryRun {
		if _, err := models.Tombstone(ctx, r.db, id, models.SourceBackfill); err != nil {
			return err
		}
	}
	r.sum.Pruned++
	r.opts.Log.Info("pruned", "user_id", id, "dry_run", r.opts.DryRun)
	return nil
}

// withRetry calls fn until it succeeds, fails for good, or the attempts
// run out.
func (r *runner) withRetry(ctx context.Context, op string, fn func() error) error {
	policy := r.opts.Retry
	if policy.Attempts < 1 {
		policy = DefaultRetry
	}
	wait := policy.Base
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !clerkapi.Retryable(err) || attempt >= policy.Attempts {
			return err
		}
		delay := min(wait, policy.MaxWait)
		if ra := clerkapi.RetryAfter(err); ra > 0 {
			delay = min(ra, maxRetryAfter)
		}
		r.opts.Log.Warn("Clerk call failed, retrying", "op", op, "attempt", attempt, "wait", delay.String(), "err", err)
		if err := r.sleep(ctx, delay); err != nil {
			return err
		}
		wait *= 2
	}
}

func (r *runner) sleep(ctx context.Context, d time.Duration) error {
	if r.opts.Sleep != nil {
		return r.opts.Sleep(ctx, d)
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
