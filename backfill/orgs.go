package backfill

import (
	"context"
	"fmt"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Counts is what a run did to one kind of object.
type Counts struct {
	Listed, Created, Updated, Unchanged, Stale, Pruned, Errors int
	PruneRefused                                               PruneRefusal // set when the prune cap refused this table's prune
}

func (c *Counts) count(o models.Outcome) {
	switch o {
	case models.Created:
		c.Created++
	case models.Updated:
		c.Updated++
	case models.Unchanged:
		c.Unchanged++
	default: // Stale, Gone, or a membership stored as a tombstone (Deleted)
		c.Stale++
	}
}

// orgPage is one page of organizations or memberships, as changes.
type orgPage struct {
	changes []models.Change
	own     []int // the index in changes of each listed object's own change
	ids     []string
	invalid []error
	size    int
}

// importOrgs lists organizations, then memberships, after the users, each
// page applied in one transaction.
func (r *runner) importOrgs(ctx context.Context) error {
	orgs := func(offset int) (orgPage, int, error) {
		page, err := r.clerk.ListOrganizations(ctx, offset, r.opts.PageSize)
		p := orgPage{invalid: page.Invalid, size: page.Size}
		for _, s := range page.Snapshots {
			p.own = append(p.own, len(p.changes))
			p.ids = append(p.ids, s.ID)
			p.changes = append(p.changes, models.Change{Kind: models.ApplyOrg, Org: s})
		}
		return p, page.Total, err
	}
	mems := func(offset int) (orgPage, int, error) {
		page, err := r.clerk.ListMemberships(ctx, offset, r.opts.PageSize)
		p := orgPage{invalid: page.Invalid, size: page.Size}
		for _, s := range page.Snapshots {
			p.changes = append(p.changes, models.MembershipChanges(models.ApplyMembership, s)...)
			p.own = append(p.own, len(p.changes)-1)
			p.ids = append(p.ids, s.ID)
		}
		return p, page.Total, err
	}
	start := time.Now()
	err := r.importKind(ctx, "organizations", orgs, &r.sum.Organizations, r.listedOrgs)
	r.sum.OrgsElapsed = time.Since(start)
	if err != nil {
		return err
	}
	start = time.Now()
	err = r.importKind(ctx, "memberships", mems, &r.sum.Memberships, r.listedMems)
	r.sum.MembershipsElapsed = time.Since(start)
	return err
}

// importKind pages through one listing, several pages in flight while the
// current one is written.
func (r *runner) importKind(ctx context.Context, kind string, fetch func(offset int) (orgPage, int, error),
	counts *Counts, listed map[string]struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan orgPage)
	done := make(chan error, 1)
	fetchPage := func(ctx context.Context, offset int) (page orgPage, size, total int, err error) {
		err = r.withRetry(ctx, "list "+kind, func() (err error) {
			page, total, err = fetch(offset)
			return err
		})
		if err == nil && offset == 0 && r.opts.Progress != nil {
			r.opts.Progress.StartKind(kind, total)
		}
		return page, page.size, total, err
	}
	go func() {
		defer close(pages)
		done <- fetchPages(ctx, r.opts.Parallel, r.opts.PageSize, -1, fetchPage, pages)
	}()
	for page := range pages {
		if err := r.applyKind(ctx, kind, page, counts, listed); err != nil {
			cancel()
			for range pages {
			}
			return fmt.Errorf("%w: %s: %v", ErrIncomplete, kind, err)
		}
	}
	if err := <-done; err != nil {
		return fmt.Errorf("%w: %s: %v", ErrIncomplete, kind, err)
	}
	return nil
}

func (r *runner) applyKind(ctx context.Context, kind string, page orgPage, counts *Counts, listed map[string]struct{}) error {
	for _, err := range page.invalid {
		counts.Errors++
		r.opts.Log.Error("object could not be mapped", "err", err)
	}
	counts.Listed += page.size
	for _, id := range page.ids {
		listed[id] = struct{}{}
	}
	outcomes, err := r.applyChanges(ctx, page.changes)
	if err != nil {
		return err
	}
	for j, i := range page.own {
		counts.count(outcomes[i])
		r.observe(kind, page.ids[j], outcomes[i])
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Update(counts.Listed)
		if page.size < r.opts.PageSize {
			r.opts.Progress.Finish(counts.Listed)
		}
	}
	return nil
}

// pruneOrgs tombstones live organizations the listing did not return once
// Clerk answers 404 for each, and live memberships neither listing
// returned that were created before the run (a newer one may be missing
// only because it is new).
func (r *runner) pruneOrgs(ctx context.Context, started time.Time) error {
	var missing []string
	err := models.EachLiveOrgID(ctx, r.db, func(id string) error {
		if _, ok := r.listedOrgs[id]; !ok {
			missing = append(missing, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		if err := r.pruneOrgsConfirmed(ctx, missing); err != nil {
			return err
		}
	}
	var gone []string
	err = models.EachLiveMembershipID(ctx, r.db, clerkapi.ListedBefore(started), func(id string) error {
		if _, ok := r.listedMems[id]; !ok {
			gone = append(gone, id)
		}
		return nil
	})
	if err != nil || len(gone) == 0 {
		return err
	}
	limit, live, err := r.pruneLimit(ctx, "memberships")
	if err != nil {
		return err
	}
	if len(gone) > limit {
		r.sum.Memberships.PruneRefused = r.refuse(PruneRefusal{Table: "memberships", Missing: len(gone), Limit: limit, Live: live})
		return nil
	}
	n := len(gone)
	if !r.opts.DryRun {
		if n, err = models.TombstoneMemberships(ctx, r.db, gone, r.opts.Source); err != nil {
			return err
		}
		for _, id := range gone {
			r.observe("memberships", id, models.Deleted)
		}
	}
	r.sum.Memberships.Pruned += n
	return nil
}

// pruneOrgsConfirmed tombstones the missing organizations Clerk answers
// 404 for, within the prune cap.
func (r *runner) pruneOrgsConfirmed(ctx context.Context, missing []string) error {
	limit, live, err := r.pruneLimit(ctx, "organizations")
	if err != nil {
		return err
	}
	deleted, over, err := r.confirmGone(ctx, missing, limit, clerkapi.ErrOrganizationNotFound, r.clerk.GetOrganization,
		func(id string, err error) {
			r.sum.Organizations.Errors++
			r.opts.Log.Error("could not confirm deletion", "organization_id", id, "err", err)
		})
	if err != nil || over {
		if over {
			r.sum.Organizations.PruneRefused = r.refuse(PruneRefusal{Table: "organizations", Missing: len(missing), Limit: limit, Live: live})
		}
		return err
	}
	for _, id := range deleted {
		if err := r.applyPrune(ctx, models.Change{Kind: models.DeleteOrg, Org: models.OrgSnapshot{ID: id}}); err != nil {
			return err
		}
		r.sum.Organizations.Pruned++
		r.observe("organizations", id, models.Deleted)
	}
	return nil
}

func (r *runner) applyPrune(ctx context.Context, c models.Change) error {
	if r.opts.DryRun {
		return nil
	}
	_, err := models.Apply(ctx, r.db, []models.Change{c}, r.opts.Source)
	return err
}

// applyChanges applies a page through the engine, or reports what it would
// do when the run is a dry run.
func (r *runner) applyChanges(ctx context.Context, changes []models.Change) ([]models.Outcome, error) {
	if r.opts.DryRun {
		return models.DryRun(ctx, r.db, changes, r.opts.Source)
	}
	return models.Apply(ctx, r.db, changes, r.opts.Source)
}
