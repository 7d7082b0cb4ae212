// Package reconcile pulls from Clerk's Backend API on a schedule, so the
// tables heal when webhooks stop arriving, and reports what it repaired
// (contract section 8). One replica at a time runs a pass: the claim lives
// in the database (models.ClaimReconcile).
package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
)

// DefaultOverlap is how far before the last successful pass's start an
// incremental pass looks: for the skew between our clock and Clerk's, and
// for a user whose update Clerk stamped just before that pass began but
// listed only after it had read the first page.
const DefaultOverlap = 5 * time.Minute

// parallel is how many Clerk requests a pass has in flight: fewer than a
// backfill, so login syncs sharing the process's budget wait behind few
// of them, and the pages held in memory stay few.
const parallel = 4

// maxTTL bounds how long a claim outlives its holder. The holder renews it
// at a third of that while a pass runs, so only a dead holder lets it lapse.
const maxTTL = time.Minute

// Options configure a Reconciler.
type Options struct {
	// Interval is the time between incremental passes (and between tries
	// to claim one); FullInterval that between full passes, 0 for none
	// after the database's first, and without prune.
	Interval, FullInterval time.Duration
	Overlap                time.Duration // DefaultOverlap unless set
	PageSize               int           // users per request (the Clerk maximum unless set)
	Retry                  backfill.Retry
	Log                    *slog.Logger
	Metrics                *metrics.Metrics // nil: none
	Holder                 string           // this replica's name in the claim; made up unless set
	Now                    func() time.Time // time.Now unless set
	// Guard checks, before the first pass, that the Clerk key belongs to
	// the instance the database mirrors (contract section 9); a pass runs
	// only once it has returned nil. Nil: checked already.
	Guard func(ctx context.Context) error
}

// Kind names a pass.
type Kind string

// The two kinds of pass.
const (
	Incremental Kind = "incremental"
	Full        Kind = "full"
)

// Reconciler runs the passes of one replica.
type Reconciler struct {
	db      *gorm.DB
	clerk   backfill.Clerk
	opts    Options
	guarded bool // Guard returned nil once
}

// New returns a Reconciler; Run starts it.
func New(db *gorm.DB, clerk backfill.Clerk, opts Options) *Reconciler {
	if opts.Overlap <= 0 {
		opts.Overlap = DefaultOverlap
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Holder == "" {
		opts.Holder = holderName()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry = backfill.DefaultRetry
	}
	return &Reconciler{db: db, clerk: clerk, opts: opts}
}

// holderName names this process in the claim: host, pid and a random part,
// so two replicas on one host, or a restarted one, never share a name.
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// ttl is how long a claim lasts without renewal: at most one interval, so
// a dead holder's claim passes to another replica within two.
func (r *Reconciler) ttl() time.Duration { return min(r.opts.Interval, maxTTL) }

// Run tries a pass at once and then every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	if r.opts.Metrics != nil {
		r.opts.Metrics.ReconcileInterval.Set(r.opts.Interval.Seconds())
	}
	ticker := time.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	for {
		if _, err := r.Tick(ctx); err != nil && ctx.Err() == nil {
			r.opts.Log.Error("reconcile pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Tick reads the state, and when this replica gets the claim runs the pass
// that is due. It returns the kind of pass run, or "" when another replica
// holds the claim or a pass began less than an interval ago.
func (r *Reconciler) Tick(ctx context.Context) (Kind, error) {
	if !r.guarded && r.opts.Guard != nil {
		if err := r.opts.Guard(ctx); err != nil {
			return "", fmt.Errorf("no pass: %w", err)
		}
	}
	r.guarded = true
	st, err := models.ReadReconcileState(ctx, r.db)
	if err != nil {
		return "", fmt.Errorf("read reconcile state: %w", err)
	}
	r.setLastSuccess(st.LastSuccessAt)
	now := r.opts.Now()
	claimed, err := models.ClaimReconcile(ctx, r.db, models.Claim{Holder: r.opts.Holder, Now: now, TTL: r.ttl(),
		Spacing: r.opts.Interval * 9 / 10})
	if err != nil || !claimed {
		return "", err
	}
	kind := r.due(st, now)
	err = r.runClaimed(ctx, kind, st, now)
	if err == nil {
		r.setLastSuccess(now.UnixMilli())
	}
	return kind, err
}

// due picks the pass: full on a database that never had a successful pass
// and whenever FullInterval has passed since the last full one.
func (r *Reconciler) due(st models.ReconcileState, now time.Time) Kind {
	if st.LastSuccessAt == 0 {
		return Full
	}
	if r.opts.FullInterval > 0 && now.Sub(time.UnixMilli(st.LastFullSuccessAt)) >= r.opts.FullInterval {
		return Full
	}
	return Incremental
}

// runClaimed runs one pass while renewing the claim, then records how it
// ended. A pass whose claim lapsed (a stalled process) is stopped.
func (r *Reconciler) runClaimed(ctx context.Context, kind Kind, st models.ReconcileState, started time.Time) error {
	passCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		r.renew(passCtx, cancel)
	}()
	sum, err := r.pass(passCtx, kind, st)
	cancel(nil)
	<-renewed
	if cause := context.Cause(passCtx); err != nil && errors.Is(cause, models.ErrClaimLost) {
		err = cause
	}
	r.count(kind, err)
	r.reportRefusals(sum)
	// Objects Clerk sent that could not be mapped were logged one by one;
	// they do not fail the pass: the next pass would find them the same.
	log := r.opts.Log.With("kind", string(kind), "listed", sum.Listed, "created", sum.Created, "updated", sum.Updated,
		"pruned", sum.Pruned, "organizations", sum.Organizations.Listed, "memberships", sum.Memberships.Listed,
		"errors", sum.Errors+sum.Organizations.Errors+sum.Memberships.Errors,
		"elapsed", sum.Elapsed.Round(time.Millisecond).String())
	// The claim is released even when ctx ended (shutdown), so another
	// replica need not wait for it to lapse.
	finishCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	if ferr := models.FinishReconcile(finishCtx, r.db, r.opts.Holder, started, kind == Full, err == nil); ferr != nil && err == nil {
		err = fmt.Errorf("record the pass: %w", ferr)
	}
	if err != nil {
		return fmt.Errorf("%s pass: %w", kind, err)
	}
	log.Info("reconcile pass done")
	return nil
}

// renew extends the claim every third of its TTL until ctx ends, and stops
// the pass when the claim is lost.
func (r *Reconciler) renew(ctx context.Context, stop context.CancelCauseFunc) {
	ticker := time.NewTicker(r.ttl() / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := models.RenewReconcile(ctx, r.db, r.opts.Holder, r.opts.Now(), r.ttl())
		if errors.Is(err, models.ErrClaimLost) {
			stop(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			r.opts.Log.Warn("could not renew the reconcile claim", "err", err)
		}
	}
}

// pass runs one pass of kind through the one write path, source reconcile.
// The database's first pass is an import; after it, every row a pass
// writes is a change the webhooks missed.
func (r *Reconciler) pass(ctx context.Context, kind Kind, st models.ReconcileState) (backfill.Summary, error) {
	opts := backfill.Options{PageSize: r.opts.PageSize, Retry: r.opts.Retry, Log: r.opts.Log, Parallel: parallel,
		Source: models.SourceReconcile, Observe: r.observer(st.LastSuccessAt == 0)}
	if kind == Incremental {
		since := time.UnixMilli(st.LastSuccessAt).Add(-r.opts.Overlap)
		return backfill.Recent(ctx, r.db, r.clerk, since, opts)
	}
	opts.Prune = r.opts.FullInterval > 0
	return backfill.Run(ctx, r.db, r.clerk, opts)
}

// observer counts every user outcome, and counts and logs each repair.
func (r *Reconciler) observer(imported bool) func(table, id string, o models.Outcome) {
	return func(table, id string, o models.Outcome) {
		if m := r.opts.Metrics; m != nil && table == "users" {
			m.Upserts.WithLabelValues(string(models.SourceReconcile), string(o)).Inc()
		}
		if imported || !o.Wrote() {
			return
		}
		if m := r.opts.Metrics; m != nil {
			m.ReconcileRepaired.WithLabelValues(table).Inc()
		}
		r.opts.Log.Warn("reconcile repaired a row the webhooks missed", "table", table, "id", id, "change", string(o))
	}
}

// reportRefusals logs and counts each table whose prune the cap refused:
// the pass applied everything else.
func (r *Reconciler) reportRefusals(sum backfill.Summary) {
	for _, p := range sum.Refusals() {
		r.opts.Log.Error("reconcile did not prune: more rows would have been tombstoned than the prune cap allows; "+
			"check that CLERK_SECRET_KEY is the instance this database mirrors, then prune by hand with usersync backfill --prune --prune-max N",
			"table", p.Table, "missing", p.Missing, "prune_max", p.Limit, "live", p.Live)
		if r.opts.Metrics != nil {
			r.opts.Metrics.PruneRefused.WithLabelValues(p.Table).Inc()
		}
	}
}

func (r *Reconciler) count(kind Kind, err error) {
	if r.opts.Metrics == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.opts.Metrics.ReconcilePasses.WithLabelValues(string(kind), result).Inc()
}

func (r *Reconciler) setLastSuccess(ms int64) {
	if r.opts.Metrics != nil && ms > 0 {
		r.opts.Metrics.ReconcileLastSuccess.Set(float64(ms) / 1000)
	}
}
