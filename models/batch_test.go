package models_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// scenario is a table state and a batch of snapshots to apply on top of it.
type scenario struct {
	before []models.Snapshot // applied one by one first
	tombs  []string          // then tombstoned
	tiers  map[string]string // then given a tier by the application
	batch  []models.Snapshot
}

// randomScenario draws users from a small id and email pool so that
// duplicates, stale snapshots, tombstones and email contests all happen.
func randomScenario(r *rand.Rand, users, emails, size int) scenario {
	pick := func() models.Snapshot {
		id := fmt.Sprintf("user_%02d", r.IntN(users))
		var opts []func(*models.Snapshot)
		switch r.IntN(4) {
		case 0: // no email
		case 1:
			opts = append(opts, email(fmt.Sprintf("Shared%d@x.io", r.IntN(emails))))
		default:
			opts = append(opts, email(id+"@x.io"))
		}
		if r.IntN(3) == 0 {
			opts = append(opts, tier([]string{"free", "PRO", "Maxx"}[r.IntN(3)]))
		}
		return snap(id, int64(1+r.IntN(20)), opts...)
	}
	sc := scenario{tiers: map[string]string{}}
	for range size / 2 {
		sc.before = append(sc.before, pick())
	}
	for range 2 {
		sc.tombs = append(sc.tombs, fmt.Sprintf("user_%02d", r.IntN(users)))
	}
	sc.tiers[fmt.Sprintf("user_%02d", r.IntN(users))] = "PRO"
	for range size {
		sc.batch = append(sc.batch, pick())
	}
	return sc
}

// uniqueScenario has no two snapshots for one user or one email: the
// multi-row path takes it.
func uniqueScenario(n int) scenario {
	sc := scenario{tiers: map[string]string{"user_0001": "MAXX"}}
	for i := range n {
		id := fmt.Sprintf("user_%04d", i)
		if i%3 == 0 {
			sc.before = append(sc.before, snap(id, 5, email(id+"@old.io")))
		}
		opts := []func(*models.Snapshot){email(id + "@new.io")}
		if i%4 == 0 {
			opts = append(opts, tier("pro"))
		}
		if i%5 == 0 {
			opts = []func(*models.Snapshot){phoneOnly("+1555" + id)}
		}
		updated := int64(10)
		if i%7 == 0 {
			updated = 5 // equal to the row: unchanged (or created when there is none)
		}
		sc.batch = append(sc.batch, snap(id, updated, opts...))
	}
	sc.tombs = []string{"user_0003", "user_9999"}
	return sc
}

func (sc scenario) prepare(t *testing.T, db *gorm.DB) {
	t.Helper()
	ctx := context.Background()
	for _, s := range sc.before {
		if _, err := models.ApplySnapshot(ctx, db, s, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range sc.tombs {
		if _, err := models.Tombstone(ctx, db, id, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
	}
	for id, tr := range sc.tiers {
		if err := db.Model(&models.User{}).Where("id = ?", id).Update("tier", tr).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// The batched upsert and the single one give the same outcomes and the
// same table for the same snapshots.
func TestBatchEqualsSingle(t *testing.T) {
	scenarios := map[string]scenario{"unique (multi-row path)": uniqueScenario(700)}
	for seed := range 6 {
		r := rand.New(rand.NewPCG(uint64(seed), 99))
		scenarios[fmt.Sprintf("random seed %d", seed)] = randomScenario(r, 25, 4, 60)
	}
	for name, sc := range scenarios {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			modelstest.EachPair(t, func(t *testing.T, single, batch *gorm.DB) {
				sc.prepare(t, single)
				sc.prepare(t, batch)
				ctx := context.Background()

				var want []models.Outcome
				for _, s := range sc.batch {
					o, err := models.ApplySnapshot(ctx, single, s, models.SourceBackfill)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, o)
				}
				before := tableView(t, batch)
				dry, err := models.DryRun(ctx, batch, modelstest.UserChanges(sc.batch), models.SourceBackfill)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(before, tableView(t, batch)); diff != "" {
					t.Fatalf("dry run changed the table:\n%s", diff)
				}
				got, err := models.Apply(ctx, batch, modelstest.UserChanges(sc.batch), models.SourceBackfill)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("outcomes (-single +batch):\n%s", diff)
				}
				if diff := cmp.Diff(want, dry); diff != "" {
					t.Errorf("dry-run outcomes (-single +dry):\n%s", diff)
				}
				if diff := cmp.Diff(tableView(t, single), tableView(t, batch)); diff != "" {
					t.Errorf("tables (-single +batch):\n%s", diff)
				}
				// Re-applying the same batch writes nothing.
				again, err := models.Apply(ctx, batch, modelstest.UserChanges(sc.batch), models.SourceBackfill)
				if err != nil {
					t.Fatal(err)
				}
				for i, o := range again {
					if o.Wrote() {
						t.Fatalf("second run: snapshot %d outcome %s", i, o)
					}
				}
			})
		})
	}
}
