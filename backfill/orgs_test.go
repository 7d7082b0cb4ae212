package backfill_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// seedOrgs adds orgs organizations (every third on PRO) to a fake Clerk,
// and perOrg memberships to each, of users user_00000 onwards.
func seedOrgs(fake *clerktest.Fake, orgs, perOrg int) {
	for o := range orgs {
		id := fmt.Sprintf("org_%05d", o)
		fields := map[string]any{"members_count": perOrg}
		if o%3 == 0 {
			fields["public_metadata"] = map[string]any{"tier": "pro"}
		}
		fake.PutOrganization(clerktest.Organization(id, int64(1000+o), fields))
		for m := range perOrg {
			user := fmt.Sprintf("user_%05d", (o+m*7)%(orgs*perOrg))
			role := "org:member"
			if m == 0 {
				role = "org:admin"
			}
			fake.PutMembership(clerktest.Membership(fmt.Sprintf("orgmem_%05d_%d", o, m), id, user, int64(2000+o), role, nil))
		}
	}
}

// A backfill brings every organization and membership in after the users,
// page by page, counted per kind; a second run writes nothing; --prune
// tombstones an organization Clerk deleted (with its memberships) and a
// membership Clerk no longer lists, but not one created after the run
// began, nor an organization the listing missed that Clerk still has.
func TestBackfillOrganizations(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		fake, _ := seedClerk(t, 30)
		seedOrgs(fake, 12, 4)
		sum, err := run(t, db, fake, backfill.Options{PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		if want := (backfill.Counts{Listed: 12, Created: 12}); sum.Organizations != want {
			t.Errorf("organizations = %+v, want %+v", sum.Organizations, want)
		}
		if want := (backfill.Counts{Listed: 48, Created: 48}); sum.Memberships != want {
			t.Errorf("memberships = %+v, want %+v", sum.Memberships, want)
		}
		orgs, err := modelstest.FindUserOrganizations(context.Background(), db, "user_00000")
		want := []models.UserOrganization{{ID: "org_00000", Name: ptr("Org org_00000"), Slug: ptr("org_00000"), Role: "org:admin", Tier: "PRO"}}
		if err != nil || !cmp.Equal(want, orgs) {
			t.Errorf("user_00000's organizations = %+v, %v; want %+v", orgs, err, want)
		}

		before := stamps(t, db)
		sum, err = run(t, db, fake, backfill.Options{PageSize: 500})
		if err != nil || sum.Organizations.Unchanged != 12 || sum.Memberships.Unchanged != 48 {
			t.Fatalf("second run = %+v, %v", sum, err)
		}
		if diff := cmp.Diff(before, stamps(t, db)); diff != "" {
			t.Errorf("a run without news wrote rows (-before +after):\n%s", diff)
		}

		fake.DeleteOrganization("org_00001")
		fake.HideFromList("org_00004") // unlisted, but GET /v1/organizations/org_00004 answers 200
		fake.DeleteMembership("orgmem_00002_3")
		// A membership created a moment ago (by a webhook) that this
		// listing could have missed is not pruned.
		recent := models.MembershipSnapshot{ID: "orgmem_new", OrganizationID: "org_00003", UserID: "user_00029",
			CreatedAt: time.Now().UnixMilli(), UpdatedAt: time.Now().UnixMilli()}
		if _, err := models.Apply(context.Background(), db, models.MembershipChanges(models.ApplyMembership, recent), models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		sum, err = run(t, db, fake, backfill.Options{PageSize: 500, Prune: true})
		if err != nil || sum.Organizations.Pruned != 1 || sum.Memberships.Pruned != 1 {
			t.Fatalf("prune run: organizations %+v, memberships %+v, %v; want 1 and 1 pruned", sum.Organizations, sum.Memberships, err)
		}
		var live int64
		db.Model(&models.Membership{}).Where("organization_id = ? AND deleted_at IS NULL", "org_00001").Count(&live)
		var org models.Organization
		db.Where("id = ?", "org_00001").Take(&org)
		if live != 0 || !org.Deleted() {
			t.Errorf("deleted organization: tombstone %v, %d live memberships", org.Deleted(), live)
		}
		var missed models.Organization
		db.Where("id = ?", "org_00004").Take(&missed)
		if missed.ID != "org_00004" || missed.Deleted() {
			t.Errorf("organization missing from the listing but still in Clerk: %+v, want it live", missed)
		}
		var gone, kept models.Membership
		db.Where("id = ?", "orgmem_00002_3").Take(&gone)
		db.Where("id = ?", "orgmem_new").Take(&kept)
		if !gone.Deleted() || kept.Deleted() {
			t.Errorf("unlisted membership tombstoned %v (want true), recent one %v (want false)", gone.Deleted(), kept.Deleted())
		}
	})
}

// A listing Clerk fails halfway leaves the pages before it committed and
// prunes nothing.
func TestBackfillOrganizationsIncomplete(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake, _ := seedClerk(t, 3)
		seedOrgs(fake, 6, 2)
		fake.FailNext(clerktest.OpListMemberships, clerktest.Failure{}, clerktest.Failure{Status: 500}, clerktest.Failure{Status: 500},
			clerktest.Failure{Status: 500}, clerktest.Failure{Status: 500})
		sum, err := run(t, db, fake, backfill.Options{PageSize: 5, Prune: true, Parallel: 1})
		if err == nil || sum.Memberships.Listed != 5 || sum.Organizations.Created != 6 || sum.Memberships.Pruned != 0 {
			t.Fatalf("run = %+v, %v; want an incomplete run with the first page of memberships", sum, err)
		}
	})
}

func stamps(t *testing.T, db *gorm.DB) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	var orgs []models.Organization
	var mems []models.Membership
	if err := db.Find(&orgs).Error; err != nil {
		t.Fatal(err)
	}
	db.Find(&mems)
	for _, o := range orgs {
		out[o.ID] = o.UpdatedAt
	}
	for _, m := range mems {
		out[m.ID] = m.UpdatedAt
	}
	return out
}

func ptr[T any](v T) *T { return &v }
