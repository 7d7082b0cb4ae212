package backfill

import (
	"context"
	"errors"
	"sync"

	"github.com/usersync/usersync/models"
)

// The prune cap (contract section 9): one run tombstones at most PruneMax
// live rows of a table, by default 10 % of them and at least 10. Over the
// cap it tombstones nothing in that table and says so; everything else is
// applied. A listing that comes back short (a key of another instance, a
// filter, an empty page) then cannot erase the table.

// DefaultPruneFloor is the least default cap: small tables may lose a few.
const DefaultPruneFloor = 10

// pruneLimit is the most rows of table this run may tombstone, and the
// table's live rows it was taken from.
func (r *runner) pruneLimit(ctx context.Context, table string) (limit, live int, err error) {
	n, err := models.CountLive(ctx, r.db, table)
	if err != nil {
		return 0, 0, err
	}
	if r.opts.DryRun { // the rows this run would have created count too
		n += int64(map[string]int{"users": r.sum.Created, "organizations": r.sum.Organizations.Created,
			"memberships": r.sum.Memberships.Created}[table])
	}
	if r.opts.PruneMax > 0 {
		return r.opts.PruneMax, int(n), nil
	}
	return max(DefaultPruneFloor, int(n)/10), int(n), nil
}

// errOverCap stops the 404 confirmations once more rows are confirmed
// deleted than the cap allows: the rest need not cost a request each.
var errOverCap = errors.New("over the prune cap")

// confirmGone asks Clerk for each missing id, several at a time, and
// returns those it answered notFound for; over reports that more than
// limit were, and the confirmations stopped there.
func (r *runner) confirmGone(ctx context.Context, missing []string, limit int, notFound error,
	get func(ctx context.Context, id string) error, failed func(id string, err error)) (gone []string, over bool, err error) {
	var mu sync.Mutex
	err = eachParallel(ctx, r.opts.Parallel, missing, func(ctx context.Context, id string) error {
		err := r.withRetry(ctx, "confirm deletion", func() error { return get(ctx, id) })
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, notFound):
			gone = append(gone, id)
			if len(gone) > limit {
				return errOverCap
			}
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			return err
		case err != nil:
			failed(id, err)
		}
		return nil
	})
	if errors.Is(err, errOverCap) {
		return nil, true, nil
	}
	return gone, false, err
}

// PruneRefusal is a table whose prune the cap refused.
type PruneRefusal struct {
	Table   string
	Missing int // live rows the listing did not return: at most this many would have been pruned
	Limit   int // the cap
	Live    int // the table's live rows
}

// Refused reports whether the cap refused the prune.
func (p PruneRefusal) Refused() bool { return p.Table != "" }

// Refusals lists the tables whose prune the cap refused.
func (s Summary) Refusals() []PruneRefusal {
	var out []PruneRefusal
	for _, p := range []PruneRefusal{s.UsersPruneRefused, s.Organizations.PruneRefused, s.Memberships.PruneRefused} {
		if p.Refused() {
			out = append(out, p)
		}
	}
	return out
}

func (r *runner) refuse(p PruneRefusal) PruneRefusal {
	r.opts.Log.Error("prune refused: more rows confirmed deleted than the prune cap allows; nothing pruned in this table",
		"table", p.Table, "missing", p.Missing, "prune_max", p.Limit, "live", p.Live, "dry_run", r.opts.DryRun)
	return p
}
