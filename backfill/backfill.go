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
	ListUsers(ctx context.Context, offset, limit int) (clerkapi.Page[models.Snapshot], error)
	ListRecentUsers(ctx context.Context, offset, limit int) (clerkapi.Page[models.Snapshot], error)
	CountUsers(ctx context.Context) (int, error)
	GetUser(ctx context.Context, id string) (models.Snapshot, error)
	ListOrganizations(ctx context.Context, offset, limit int) (clerkapi.Page[models.OrgSnapshot], error)
	ListMemberships(ctx context.Context, offset, limit int) (clerkapi.Page[models.MembershipSnapshot], error)
	GetOrganization(ctx context.Context, id string) error
}

// Options configure one run.
type Options struct {
	PageSize int  // users per request, 1 to clerkapi.MaxPageSize
	DryRun   bool // read everything, write nothing
	Prune    bool // tombstone live rows Clerk confirms deleted
	// PruneMax caps the rows of each table one run tombstones; 0 means
	// 10 % of the table's live rows and at least DefaultPruneFloor.
	PruneMax int
	Retry    Retry
	Progress *Progress // nil: no progress output
	Log      *slog.Logger
	// Source is the sync_source written (backfill unless set).
	Source models.Source
	// Parallel is how many Clerk requests a listing or the prune's
	// confirmations have in flight (DefaultParallel unless set).
	Parallel int
	// Observe, when set, is told every object's outcome as it is committed
	// (and each pruned one as Deleted), by table: users, organizations or
	// memberships. Reconcile counts and logs what it repaired with it.
	Observe func(table, id string, o models.Outcome)
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
	// UsersPruneRefused is set when the prune cap refused the users' prune
	// (Organizations.PruneRefused and Memberships.PruneRefused theirs).
	UsersPruneRefused PruneRefusal
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
	r := newRunner(db, clerk, opts)
	start := time.Now()
	if opts.Progress != nil {
		var total int
		err := r.withRetry(ctx, "count users", func() (err error) {
			total, err = clerk.CountUsers(ctx)
			return err
		})
		if err != nil {
			r.opts.Log.Warn("could not count users; progress shows no total", "err", err)
		} else {
			r.userCount = total
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

func newRunner(db *gorm.DB, clerk Clerk, opts Options) *runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Source == "" {
		opts.Source = models.SourceBackfill
	}
	if opts.Parallel < 1 {
		opts.Parallel = DefaultParallel
	}
	if opts.PageSize < 1 {
		opts.PageSize = clerkapi.MaxPageSize
	}
	r := &runner{db: db, clerk: clerk, opts: opts, listed: map[string]struct{}{},
		listedOrgs: map[string]struct{}{}, listedMems: map[string]struct{}{}}
	r.userCount = -1
	return r
}

// observe passes outcomes on to Options.Observe.
func (r *runner) observe(table, id string, o models.Outcome) {
	if r.opts.Observe != nil && !r.opts.DryRun {
		r.opts.Observe(table, id, o)
	}
}

type runner struct {
	db     *gorm.DB
	clerk  Clerk
	opts   Options
	sum    Summary
	listed map[string]struct{} // ids seen in the listing, for pruning

	listedOrgs, listedMems map[string]struct{}
	userCount              int // from GET /v1/users/count for the progress display, or -1
}

// importAll overlaps listing and writing: pages are fetched several at a
// time while this goroutine applies them in listing order.
func (r *runner) importAll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan clerkapi.Page[models.Snapshot])
	listed := make(chan error, 1)
	go func() {
		defer close(pages)
		listed <- fetchPages(ctx, r.opts.Parallel, r.opts.PageSize, r.userCount, r.fetchUsers, pages)
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

// fetchUsers fetches one page of users. Clerk's user listing carries no
// total: the count asked for the progress display stands in, if it was.
func (r *runner) fetchUsers(ctx context.Context, offset int) (page clerkapi.Page[models.Snapshot], size, total int, err error) {
	err = r.withRetry(ctx, "list users", func() error {
		page, err = r.clerk.ListUsers(ctx, offset, r.opts.PageSize)
		return err
	})
	return page, page.Size, r.userCount, err
}

func (r *runner) apply(ctx context.Context, page clerkapi.Page[models.Snapshot]) error {
	for _, err := range page.Invalid {
		r.sum.Errors++
		r.opts.Log.Error("user could not be mapped", "err", err)
	}
	r.sum.Listed += page.Size
	for _, s := range page.Snapshots {
		r.listed[s.ID] = struct{}{}
	}
	changes := make([]models.Change, len(page.Snapshots))
	for i, s := range page.Snapshots {
		changes[i] = models.UserChange(s)
	}
	outcomes, err := r.applyChanges(ctx, changes)
	if err != nil {
		return err
	}
	for i, o := range outcomes {
		r.sum.count(o)
		r.observe("users", page.Snapshots[i].ID, o)
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
	if len(missing) == 0 {
		return nil
	}
	limit, live, err := r.pruneLimit(ctx, "users")
	if err != nil {
		return err
	}
	gone, over, err := r.confirmGone(ctx, missing, limit, clerkapi.ErrUserNotFound,
		func(ctx context.Context, id string) error { _, err := r.clerk.GetUser(ctx, id); return err },
		func(id string, err error) {
			r.sum.Errors++
			r.opts.Log.Error("could not confirm deletion", "user_id", id, "err", err)
		})
	if err != nil || over {
		if over {
			r.sum.UsersPruneRefused = r.refuse(PruneRefusal{Table: "users", Missing: len(missing), Limit: limit, Live: live})
		}
		return err
	}
	return r.tombstone(ctx, gone)
}

// tombstone records that Clerk deleted the users ids (rule 5), up to
// pruneChunk in one transaction.
func (r *runner) tombstone(ctx context.Context, ids []string) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), pruneChunk)]
		ids = ids[len(chunk):]
		changes := make([]models.Change, len(chunk))
		for i, id := range chunk {
			changes[i] = models.UserDeletion(id)
		}
		if !r.opts.DryRun {
			outcomes, err := models.Apply(ctx, r.db, changes, r.opts.Source)
			if err != nil {
				return err
			}
			for i, o := range outcomes {
				r.observe("users", chunk[i], o)
			}
		}
		for _, id := range chunk {
			r.opts.Log.Info("pruned", "user_id", id, "dry_run", r.opts.DryRun)
		}
		r.sum.Pruned += len(chunk)
	}
	return nil
}

// pruneChunk is how many tombstones one prune transaction writes.
const pruneChunk = 500

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
