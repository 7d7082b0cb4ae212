package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// Concurrent reads share queries, and each caller gets its own row (or
// ErrNotFound), exactly as models.FindProfile would answer it, and its own
// organizations, as models.FindUserOrganizations would list them.
func TestProfileReaderCoalesces(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		for i := range 20 {
			id := fmt.Sprintf("user_%02d", i)
			if _, err := models.ApplySnapshot(ctx, db, models.Snapshot{ID: id, UpdatedAt: int64(i + 1)}, models.SourceLogin); err != nil {
				t.Fatal(err)
			}
		}
		// user_00..04 are members of org_a; user_00 and user_01 of org_b too,
		// user_01's membership of org_b created first.
		var changes []models.Change
		for _, org := range []string{"org_a", "org_b"} {
			changes = append(changes, models.Change{Kind: models.ApplyOrg, Org: models.OrgSnapshot{ID: org, UpdatedAt: 1}})
		}
		member := func(org, user string, created int64) models.Change {
			return models.Change{Kind: models.ApplyMembership, Membership: models.MembershipSnapshot{
				ID: "orgmem_" + org + "_" + user, OrganizationID: org, UserID: user, Role: "org:member",
				CreatedAt: created, UpdatedAt: created}}
		}
		for i := range 5 {
			changes = append(changes, member("org_a", fmt.Sprintf("user_%02d", i), 10))
		}
		changes = append(changes, member("org_b", "user_00", 20), member("org_b", "user_01", 5))
		if _, err := models.Apply(ctx, db, changes, models.SourceBackfill); err != nil {
			t.Fatal(err)
		}
		r := newProfileReader(db, 8, 2)
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				id := fmt.Sprintf("user_%02d", i%25) // 20..24 have no row
				got, err := r.find(ctx, id)
				want, wantErr := modelstest.FindProfile(ctx, db, id)
				if !errors.Is(err, wantErr) {
					t.Errorf("%s: find err = %v, FindProfile err = %v", id, err, wantErr)
				}
				if diff := cmp.Diff(want, got.User); diff != "" {
					t.Errorf("%s (-FindProfile +find):\n%s", id, diff)
				}
				if err != nil {
					return
				}
				wantOrgs, err := modelstest.FindUserOrganizations(ctx, db, id)
				if err != nil {
					t.Error(err)
				}
				if diff := cmp.Diff(wantOrgs, got.Organizations); diff != "" {
					t.Errorf("%s organizations (-FindUserOrganizations +find):\n%s", id, diff)
				}
			})
		}
		wg.Wait()
		for id, want := range map[string][]string{"user_00": {"org_a", "org_b"}, "user_01": {"org_b", "org_a"}, "user_05": nil} {
			p, err := r.find(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, o := range p.Organizations {
				got = append(got, o.ID)
			}
			if !cmp.Equal(got, append([]string{}, want...)) {
				t.Errorf("%s organizations = %v, want %v", id, got, want)
			}
		}
	})
}
