package backfill_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// fastRetry keeps retry tests quick; Retry-After is honoured but capped.
var fastRetry = backfill.Retry{Attempts: 4, Base: time.Millisecond, MaxWait: 20 * time.Millisecond}

// seedClerk fills a fake Clerk with n users: every 7th without an email
// (phone only), every 5th with a tier in public_metadata.
func seedClerk(t *testing.T, n int) (*clerktest.Fake, []map[string]any) {
	t.Helper()
	fake := clerktest.New(t)
	var users []map[string]any
	for i := range n {
		id := fmt.Sprintf("user_%05d", i)
		email := fmt.Sprintf("%s@example.com", id)
		extra := map[string]any{}
		if i%7 == 0 {
			email = ""
			extra["phone_numbers"] = []any{map[string]any{"id": "idn_p" + id, "phone_number": fmt.Sprintf("+1555%07d", i)}}
			extra["primary_phone_number_id"] = "idn_p" + id
		}
		if i%5 == 0 {
			extra["public_metadata"] = map[string]any{"tier": []string{"pro", "MAXX"}[i%2]}
		}
		u := clerktest.User(id, int64(1000+i), email, extra)
		fake.PutUser(u)
		users = append(users, u)
	}
	return fake, users
}

func run(t *testing.T, db *gorm.DB, fake *clerktest.Fake, opts backfill.Options) (backfill.Summary, error) {
	t.Helper()
	if opts.PageSize == 0 {
		opts.PageSize = 500
	}
	if opts.Retry.Attempts == 0 {
		opts.Retry = fastRetry
	}
	return backfill.Run(context.Background(), db, clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil), opts)
}

// wantTableEqualsClerk checks every Clerk user's row against the snapshot
// the mapping makes of it (tombstoned ids stay tombstones).
func wantTableEqualsClerk(t *testing.T, db *gorm.DB, users []map[string]any, tombstoned map[string]bool) {
	t.Helper()
	var rows []models.User
	if err := db.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	byID := map[string]models.User{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	for _, u := range users {
		raw, _ := json.Marshal(u)
		s, err := clerkapi.SnapshotFromJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		row, ok := byID[s.ID]
		if !ok {
			t.Fatalf("%s missing from the table", s.ID)
		}
		if tombstoned[s.ID] {
			if !row.Deleted() || row.Email != nil {
				t.Errorf("%s should have stayed a tombstone: %+v", s.ID, row)
			}
			continue
		}
		tier := s.Tier
		if tier == "" {
			tier = models.TierFree
		}
		got := []any{row.Email, row.PhoneNumber, row.FirstName, row.Tier, row.ClerkUpdatedAt, row.Deleted(), row.SyncSource}
		want := []any{s.Email, s.PhoneNumber, s.FirstName, tier, s.UpdatedAt, false, models.SourceBackfill}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-clerk +table):\n%s", s.ID, diff)
		}
	}
}

func TestBackfillImportsEverything(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		fake, users := seedClerk(t, 2300)
		tombstoned := map[string]bool{"user_00010": true, "user_01999": true}
		for id := range tombstoned {
			if _, err := models.Tombstone(context.Background(), db, id, models.SourceWebhook); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := run(t, db, fake, backfill.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := backfill.Summary{Listed: 2300, Created: 2298, Stale: 2}
		sum.Elapsed, sum.OrgsElapsed, sum.MembershipsElapsed = 0, 0, 0
		if sum != want {
			t.Errorf("summary = %+v, want %+v", sum, want)
		}
		wantTableEqualsClerk(t, db, users, tombstoned)
		// 5 pages, and pages past the end that were in flight before the
		// short fifth page came back (no total is known without a count).
		if n := fake.Hits(clerktest.OpListUsers); n < 5 || n > 5+backfill.DefaultParallel {
			t.Errorf("list requests = %d, want 5 pages and at most %d past the end", n, backfill.DefaultParallel)
		}

		// A second run writes nothing.
		var before time.Time
		db.Model(&models.User{}).Select("MAX(updated_at)").Scan(&before)
		sum, err = run(t, db, fake, backfill.Options{PageSize: 300})
		if err != nil {
			t.Fatal(err)
		}
		sum.Elapsed, sum.OrgsElapsed, sum.MembershipsElapsed = 0, 0, 0
		if want := (backfill.Summary{Listed: 2300, Unchanged: 2298, Stale: 2}); sum != want {
			t.Errorf("second run = %+v, want %+v", sum, want)
		}
		var after time.Time
		db.Model(&models.User{}).Select("MAX(updated_at)").Scan(&after)
		if !after.Equal(before) {
			t.Errorf("second run moved MAX(updated_at) from %v to %v", before, after)
		}
	})
}

func TestBackfillDryRunWritesNothing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, _ := seedClerk(t, 1200)
		if _, err := models.ApplySnapshot(context.Background(), db, models.Snapshot{ID: "gone_1", UpdatedAt: 1}, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		sum, err := run(t, db, fake, backfill.Options{DryRun: true, Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		sum.Elapsed, sum.OrgsElapsed, sum.MembershipsElapsed = 0, 0, 0
		if want := (backfill.Summary{Listed: 1200, Created: 1200, Pruned: 1}); sum != want {
			t.Errorf("dry run = %+v, want %+v", sum, want)
		}
		var rows []models.User
		db.Find(&rows)
		if len(rows) != 1 || rows[0].ID != "gone_1" || rows[0].Deleted() {
			t.Errorf("dry run changed the table: %d rows", len(rows))
		}
	})
}

func TestBackfillRateLimitedPagesComplete(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, users := seedClerk(t, 1100)
		ok := clerktest.Failure{}
		limited := clerktest.Failure{Status: 429, RetryAfter: "90"} // longer than any backoff cap
		fake.FailNext(clerktest.OpListUsers, limited, ok, limited, limited, ok)
		var waits []time.Duration
		sleep := func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
		sum, err := run(t, db, fake, backfill.Options{Sleep: sleep, Parallel: 1}) // one request at a time: FailNext's order
		if err != nil {
			t.Fatal(err)
		}
		if sum.Listed != 1100 || sum.Created != 1100 || sum.Errors != 0 {
			t.Errorf("summary = %+v", sum)
		}
		if n := fake.Hits(clerktest.OpListUsers); n != 6 {
			t.Errorf("list requests = %d, want 3 pages + 3 retries", n)
		}
		if diff := cmp.Diff([]time.Duration{90 * time.Second, 90 * time.Second, 90 * time.Second}, waits); diff != "" {
			t.Errorf("waits (-Retry-After +waited):\n%s", diff)
		}
		wantTableEqualsClerk(t, db, users, nil)
	})
}

func TestBackfillServerErrorsStopWithPagesCommitted(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, _ := seedClerk(t, 1300)
		ok, broken := clerktest.Failure{}, clerktest.Failure{Status: 500}
		fake.FailNext(clerktest.OpListUsers, ok, ok, broken, broken, broken, broken)
		sum, err := run(t, db, fake, backfill.Options{PageSize: 400, Prune: true, Parallel: 1})
		if !errors.Is(err, backfill.ErrIncomplete) {
			t.Fatalf("err = %v, want ErrIncomplete", err)
		}
		if sum.Created != 800 || sum.Pruned != 0 {
			t.Errorf("summary = %+v, want the first two pages created and nothing pruned", sum)
		}
		var n int64
		db.Model(&models.User{}).Count(&n)
		if n != 800 {
			t.Errorf("rows = %d, want the 800 users of the pages before the failure", n)
		}
		// Re-running completes and picks up where the data is missing.
		sum, err = run(t, db, fake, backfill.Options{PageSize: 400})
		if err != nil || sum.Created != 500 || sum.Unchanged != 800 {
			t.Errorf("re-run = %+v, %v", sum, err)
		}
	})
}

func TestBackfillPrune(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, _ := seedClerk(t, 600)
		ctx := context.Background()
		// gone_1 was deleted in Clerk while the webhook endpoint was down;
		// late_1 was created in Clerk after the listing passed its place.
		for _, id := range []string{"gone_1", "late_1"} {
			if _, err := models.ApplySnapshot(ctx, db, models.Snapshot{ID: id, UpdatedAt: 1}, models.SourceWebhook); err != nil {
				t.Fatal(err)
			}
		}
		fake.PutUser(clerktest.User("late_1", 5, "late@example.com", nil))
		fake.HideFromList("late_1")

		sum, err := run(t, db, fake, backfill.Options{Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Pruned != 1 || sum.Created != 600 {
			t.Errorf("summary = %+v, want 1 pruned", sum)
		}
		gone, _ := modelstest.FindUser(ctx, db, "gone_1")
		late, _ := modelstest.FindUser(ctx, db, "late_1")
		if !gone.Deleted() || gone.SyncSource != models.SourceBackfill || late.Deleted() {
			t.Errorf("gone_1 deleted=%v source=%s; late_1 deleted=%v", gone.Deleted(), gone.SyncSource, late.Deleted())
		}
		var live int64
		db.Model(&models.User{}).Where("deleted_at IS NULL").Count(&live)
		if live != 601 {
			t.Errorf("live rows = %d, want 601", live)
		}
	})
}

func TestBackfillPruneSkippedAfterErrors(t *testing.T) {
	db := modelstest.New(t, models.SQLite)
	fake, _ := seedClerk(t, 10)
	fake.PutUser(map[string]any{"id": "user_bad", "object": "user", "updated_at": "not a number"})
	if _, err := models.ApplySnapshot(context.Background(), db, models.Snapshot{ID: "gone_1", UpdatedAt: 1}, models.SourceWebhook); err != nil {
		t.Fatal(err)
	}
	sum, err := run(t, db, fake, backfill.Options{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Errors != 1 || sum.Pruned != 0 || sum.Listed != 11 {
		t.Errorf("summary = %+v, want 1 error and no pruning", sum)
	}
	if n := fake.Hits(clerktest.OpGetUser); n != 0 {
		t.Errorf("GET user called %d times; pruning must not start after errors", n)
	}
}

// benchUser is a realistic Clerk user (email, metadata, an external account).
func benchUser(i int) map[string]any {
	id := fmt.Sprintf("user_2bench%08d", i)
	extra := map[string]any{
		"username":         fmt.Sprintf("bench%d", i),
		"external_id":      nil,
		"last_sign_in_at":  1700000000000 + int64(i),
		"public_metadata":  map[string]any{"plan": "starter"},
		"private_metadata": map[string]any{"stripe_customer": fmt.Sprintf("cus_%08d", i)},
		"external_accounts": []any{map[string]any{
			"object": "google_account", "id": "idn_g" + id, "provider": "oauth_google",
			"email_address": id + "@gmail.com", "given_name": "Bench", "family_name": "User",
		}},
	}
	return clerktest.User(id, 1700000000000+int64(i), id+"@example.com", extra)
}

// Against a Clerk that takes 100 ms a page and allows 100 requests a
// second, a listing has several pages in flight at once, within the
// budget: no request is refused with 429, and the table ends as Clerk is.
func TestBackfillFetchesPagesConcurrentlyWithinTheBudget(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, users := seedClerk(t, 1200)
		fake.SetLatency(100 * time.Millisecond)
		fake.SetRateLimit(100, time.Second)
		client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil, clerkapi.WithBudget(clerkapi.NewBudget(100, time.Second, nil)))
		// With a progress display the count is asked first, which bounds
		// the pages requested.
		progress := backfill.NewProgress(io.Discard, slog.New(slog.DiscardHandler), false, time.Hour)
		sum, err := backfill.Run(context.Background(), db, client, backfill.Options{PageSize: 100, Parallel: 4, Retry: fastRetry,
			Progress: progress})
		if err != nil || sum.Created != 1200 {
			t.Fatalf("summary %+v, err %v", sum, err)
		}
		inFlight, limited := fake.Concurrency()
		if inFlight != 4 || limited != 0 {
			t.Errorf("at most %d requests in flight (want 4), %d refused with 429 (want 0)",
				inFlight, limited)
		}
		// 12 full pages and the empty one that ends the listing.
		if n := fake.Hits(clerktest.OpListUsers); n != 13 {
			t.Errorf("list requests = %d, want 13", n)
		}
		wantTableEqualsClerk(t, db, users, nil)
	})
}

// The prune cap: one run tombstones at most 10 % of a table's live rows,
// and at least 10, or --prune-max; over it nothing in that table is
// pruned, everything else is applied, and the refusal is reported.
func TestBackfillPruneCap(t *testing.T) {
	for _, tc := range []struct {
		name            string
		listed, gone    int
		pruneMax        int
		dryRun          bool
		pruned, refused int
	}{
		{"10 % exactly", 180, 20, 0, false, 20, 0},
		{"one over 10 %", 179, 21, 0, false, 0, 21},
		{"the floor of 10", 40, 10, 0, false, 10, 0},
		{"one over the floor", 39, 11, 0, false, 0, 11},
		{"--prune-max lets more go", 179, 21, 21, false, 21, 0},
		{"--prune-max below the default", 180, 20, 19, false, 0, 20},
		{"a dry run reports the same refusal", 179, 21, 0, true, 0, 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				fake, _ := seedClerk(t, tc.listed)
				for i := range tc.gone {
					s := models.Snapshot{ID: fmt.Sprintf("gone_%02d", i), UpdatedAt: 1}
					if _, err := models.ApplySnapshot(context.Background(), db, s, models.SourceWebhook); err != nil {
						t.Fatal(err)
					}
				}
				sum, err := run(t, db, fake, backfill.Options{Prune: true, PruneMax: tc.pruneMax, DryRun: tc.dryRun})
				if err != nil {
					t.Fatal(err)
				}
				if sum.Pruned != tc.pruned || sum.UsersPruneRefused.Missing != tc.refused || sum.Created != tc.listed {
					t.Errorf("created %d, pruned %d, refused %+v; want %d, %d, %d", sum.Created, sum.Pruned, sum.UsersPruneRefused,
						tc.listed, tc.pruned, tc.refused)
				}
				if tc.refused > 0 && (sum.UsersPruneRefused.Live != tc.listed+tc.gone || len(sum.Refusals()) != 1) {
					t.Errorf("refusal %+v, want %d live rows", sum.UsersPruneRefused, tc.listed+tc.gone)
				}
				var live int64
				db.Model(&models.User{}).Where("deleted_at IS NULL").Count(&live)
				want := tc.listed + tc.gone - tc.pruned
				if tc.dryRun {
					want = tc.gone // a dry run writes nothing: only the gone rows were there
				}
				if int(live) != want {
					t.Errorf("live rows = %d, want %d", live, want)
				}
			})
		})
	}
}
