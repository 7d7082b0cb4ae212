package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/check"
	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
)

const backfillHelp = `Usage: usersync backfill [--dry-run] [--prune] [--prune-max N] [--page-size N] [--since DURATION] [--rebind]

Imports every user from the Clerk Backend API ($CLERK_API_URL/v1/users, oldest
first) through the same upsert as the webhook, one transaction per page; then
every organization (/v1/organizations) and membership
(/v1/organization_memberships) the same way. Safe to re-run: objects that did
not change are not written. Needs CLERK_SECRET_KEY.

--prune also tombstones organizations Clerk answers 404 for, and live
memberships neither listing returned (when both completed). One run tombstones
at most --prune-max rows per table (default: 10 % of the table's live rows, and
at least 10); over it, it prunes nothing in that table, says how many it would
have, and exits 1.

The database mirrors one Clerk instance, recorded the first time it is learned
(from CLERK_SECRET_KEY's JWKS, or a webhook event). A key of another instance is
refused before anything is listed or written. --rebind makes the database mirror
the key's instance instead, and says what it changes; the other instance's rows
stay until a reviewed --prune --prune-max N removes them.

--since DURATION runs one incremental pass instead, as serve's reconcile does:
users updated in the last DURATION (e.g. 1h), most recently updated first,
then it exits. Organizations and memberships are not listed.

Exit codes: 0 everything applied; 1 some objects failed or the run stopped early
(pages already applied stay committed); 2 bad flags or configuration.
`

func runBackfill(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "read everything and report what would change; write nothing")
	prune := fs.Bool("prune", false, "after a complete listing, tombstone live rows Clerk answers 404 for")
	pageSize := fs.Int("page-size", clerkapi.MaxPageSize, "users per request (1-500)")
	since := fs.Duration("since", 0, "one incremental pass over users updated in this window (e.g. 1h), then exit")
	pruneMax := fs.Int("prune-max", 0, "the most rows per table one run may prune (default: 10% of the live rows, at least 10)")
	rebind := fs.Bool("rebind", false, "make the database mirror CLERK_SECRET_KEY's Clerk instance instead of the one it mirrors")
	if err := parseFlags(fs, args, stdout, backfillHelp); err != nil {
		return err
	}
	switch {
	case *since < 0:
		return usageError{errors.New("backfill: --since must be a positive duration such as 1h")}
	case *since > 0 && *prune:
		return usageError{errors.New("backfill: --since and --prune cannot be combined: a prune needs the whole listing")}
	case *pruneMax < 0:
		return usageError{errors.New("backfill: --prune-max must be 1 or more")}
	}
	if *pageSize < 1 || *pageSize > clerkapi.MaxPageSize {
		return usageError{fmt.Errorf("backfill: --page-size must be between 1 and %d", clerkapi.MaxPageSize)}
	}
	cfg, log, err := setup(getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.ClerkSecretKey == "" {
		return usageError{errors.New("CLERK_SECRET_KEY: required by backfill")}
	}
	open := openDB
	if *dryRun {
		open = openExisting
	}
	db, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer models.Close(db)

	terminal := false
	if f, ok := stderr.(*os.File); ok {
		terminal = isatty.IsTerminal(f.Fd())
	}
	// No deadline: backfill waits for budget rather than being refused.
	budget := clerkapi.NewBudget(cfg.ClerkAPIRate.Requests, cfg.ClerkAPIRate.Per, nil)
	client := clerkapi.NewClient(cfg.ClerkAPIURL, cfg.ClerkSecretKey, nil, clerkapi.WithBudget(budget))
	if err := guardInstance(ctx, db, client, *rebind, *dryRun, stdout, log); err != nil {
		return explainRejection(err)
	}
	opts := backfill.Options{PageSize: *pageSize, DryRun: *dryRun, Prune: *prune, PruneMax: *pruneMax,
		Retry: backfill.DefaultRetry, Log: log}
	var sum backfill.Summary
	if *since > 0 {
		sum, err = backfill.Recent(ctx, db, client, time.Now().Add(-*since), opts)
	} else {
		opts.Progress = backfill.NewProgress(stderr, log, terminal, 5*time.Second)
		sum, err = backfill.Run(ctx, db, client, opts)
	}
	printSummary(stdout, sum, *dryRun)
	if created := sum.Created + sum.Organizations.Created + sum.Memberships.Created; created >= analyzeAfter && !*dryRun {
		// Fresh statistics, so the planner sees the tables' new size now
		// rather than when autovacuum next gets to them.
		if aerr := models.Analyze(ctx, db); aerr != nil {
			log.Warn("could not analyze the tables after the import", "err", aerr)
		}
	}
	if err != nil {
		return explainRejection(err)
	}
	if refused := sum.Refusals(); len(refused) > 0 {
		printRefusals(stdout, refused)
		return fmt.Errorf("backfill: the prune cap refused to prune %s (see above)", refusedTables(refused))
	}
	if sum.Errors > 0 {
		return fmt.Errorf("backfill: %d users failed", sum.Errors)
	}
	if n := sum.Organizations.Errors + sum.Memberships.Errors; n > 0 {
		return fmt.Errorf("backfill: %d organizations or memberships failed", n)
	}
	return nil
}

// analyzeAfter is how many rows a backfill must create before it refreshes
// the tables' planner statistics.
const analyzeAfter = 1000

// guardInstance checks that CLERK_SECRET_KEY belongs to the Clerk instance
// the database mirrors before anything is listed or written (contract
// section 9), binding an unbound database to it; with rebind it makes the
// database mirror the key's instance. A dry run writes no binding.
func guardInstance(ctx context.Context, db *gorm.DB, client *clerkapi.Client, rebind, dryRun bool, stdout io.Writer,
	log *slog.Logger) error {
	key, err := client.Instance(ctx)
	switch {
	case errors.Is(err, clerkapi.ErrInstanceUnknown) && !rebind:
		log.Warn("the key's Clerk instance is unknown; the database's binding is not checked", "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("learn CLERK_SECRET_KEY's Clerk instance: %w", err)
	}
	bound, err := models.BoundInstance(ctx, db)
	switch {
	case err != nil:
		return err
	case rebind && dryRun:
		fmt.Fprintf(stdout, "rebind (dry run): this database mirrors %s; it would mirror %s, CLERK_SECRET_KEY's instance\n",
			orNone(bound), key)
		return nil
	case rebind:
		if bound, err = models.RebindInstance(ctx, db, key); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebind: this database mirrored Clerk instance %s; it now mirrors %s, CLERK_SECRET_KEY's instance. "+
			"Rows of %[1]s stay until you remove them: review with --prune --dry-run, then run --prune --prune-max N\n",
			orNone(bound), key)
		return nil
	case dryRun && bound != "" && bound != key:
		return &models.InstanceMismatchError{Bound: bound, Key: key}
	case dryRun:
		return nil
	}
	return models.GuardInstance(ctx, db, key)
}

// explainRejection names a refused CLERK_SECRET_KEY (Clerk answered 401
// or 403) as check does, instead of Clerk being unavailable.
func explainRejection(err error) error {
	var refused *clerkapi.KeyRefusedError
	if errors.As(err, &refused) {
		return errors.New(check.RefusedKey(refused.Status))
	}
	return err
}

func orNone(instance string) string {
	if instance == "" {
		return "no instance"
	}
	return instance
}

// printRefusals says, per table, what the prune cap stopped and how to go on.
func printRefusals(w io.Writer, refused []backfill.PruneRefusal) {
	for _, p := range refused {
		fmt.Fprintf(w, "prune refused for %s: up to %d of its %d live rows would be pruned (Clerk's listing did not return them), "+
			"more than the cap of %d; nothing was pruned in %[1]s. If Clerk really deleted them, run again with --prune --prune-max %[2]d "+
			"(check first that CLERK_SECRET_KEY is the instance this database mirrors)\n", p.Table, p.Missing, p.Live, p.Limit)
	}
}

func refusedTables(refused []backfill.PruneRefusal) string {
	names := make([]string, len(refused))
	for i, p := range refused {
		names[i] = p.Table
	}
	return strings.Join(names, ", ")
}

func printSummary(w io.Writer, s backfill.Summary, dryRun bool) {
	title := "backfill summary"
	if dryRun {
		title += " (dry run: nothing was written)"
	}
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	o, m := s.Organizations, s.Memberships
	fmt.Fprintf(tw, "  \tusers\torganizations\tmemberships\t\n")
	for _, row := range []struct {
		name    string
		u, o, m int
	}{
		{"listed", s.Listed, o.Listed, m.Listed}, {"created", s.Created, o.Created, m.Created},
		{"updated", s.Updated, o.Updated, m.Updated}, {"unchanged", s.Unchanged, o.Unchanged, m.Unchanged},
		{"stale", s.Stale, o.Stale, m.Stale}, {"pruned", s.Pruned, o.Pruned, m.Pruned},
		{"errors", s.Errors, o.Errors, m.Errors},
	} {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t\n", row.name, row.u, row.o, row.m)
	}
	fmt.Fprintf(tw, "  elapsed\t%v\t%v\t%v\t\n", s.Elapsed.Round(time.Millisecond), s.OrgsElapsed.Round(time.Millisecond),
		s.MembershipsElapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "  per second\t%.0f\t%.0f\t%.0f\t\n", s.UsersPerSecond(), s.OrgsPerSecond(), s.MembershipsPerSecond())
	tw.Flush()
}

// openExisting opens a database that must already hold the current schema:
// a dry run creates no file and applies no migration.
func openExisting(ctx context.Context, cfg config.Config, log *slog.Logger) (*gorm.DB, error) {
	if path := cfg.Database.SQLitePath(); path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database at %s: run usersync migrate (or a backfill without --dry-run) first", path)
		}
	}
	db, err := connect(ctx, cfg.Database, cfg.Database.DSN, log)
	if err != nil {
		return nil, err
	}
	if pending, err := models.MigrationsPending(ctx, db); err != nil || pending {
		models.Close(db)
		if err == nil {
			err = errors.New("the database schema is not current: run usersync migrate first")
		}
		return nil, err
	}
	return db, nil
}
