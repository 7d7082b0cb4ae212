package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func orgSnap(id string, updatedAt int64, opts ...func(*models.OrgSnapshot)) models.OrgSnapshot {
	s := models.OrgSnapshot{
		ID: id, Name: ptr(fmt.Sprintf("Org %d", updatedAt)), Slug: ptr(id), CreatedBy: ptr("user_creator"),
		MembersCount: ptr(int64(updatedAt)), UpdatedAt: updatedAt,
		RawJSON: fmt.Sprintf(`{"id":%q,"updated_at":%d}`, id, updatedAt),
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func orgTier(t string) func(*models.OrgSnapshot) { return func(s *models.OrgSnapshot) { s.Tier = t } }

// memSnap builds a membership of user in org, created at created, carrying
// no organization unless withOrg adds one.
func memSnap(id, org, user string, created, updated int64, role string) models.MembershipSnapshot {
	return models.MembershipSnapshot{
		ID: id, OrganizationID: org, UserID: user, Role: role, CreatedAt: created, UpdatedAt: updated,
		RawJSON: fmt.Sprintf(`{"id":%q,"updated_at":%d,"public_user_data":{"identifier":"x@y.z"}}`, id, updated),
	}
}

func withOrg(m models.MembershipSnapshot, o models.OrgSnapshot) models.MembershipSnapshot {
	m.Org = &o
	return m
}

// orgStep is one change (or a user deletion) and the outcomes it reports.
type orgStep struct {
	changes []models.Change
	delUser string
	setTier [2]string // {org id, tier}: the application changes a tier itself
	want    []models.Outcome
}

func upOrg(s models.OrgSnapshot, want models.Outcome) orgStep {
	return orgStep{changes: []models.Change{{Kind: models.ApplyOrg, Org: s}}, want: []models.Outcome{want}}
}

func delOrg(id string, want models.Outcome) orgStep {
	return orgStep{changes: []models.Change{{Kind: models.DeleteOrg, Org: models.OrgSnapshot{ID: id}}}, want: []models.Outcome{want}}
}

// upMem and delMem apply a membership event: its organization (when it
// carries one), then the membership.
func upMem(m models.MembershipSnapshot, want ...models.Outcome) orgStep {
	return orgStep{changes: models.MembershipChanges(models.ApplyMembership, m), want: want}
}

func delMem(m models.MembershipSnapshot, want ...models.Outcome) orgStep {
	return orgStep{changes: models.MembershipChanges(models.DeleteMembership, m), want: want}
}

func pruneMem(user string, keep []string, before int64, want models.Outcome) orgStep {
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	return orgStep{changes: []models.Change{{Kind: models.PruneMemberships, UserID: user, Keep: k, Before: before}},
		want: []models.Outcome{want}}
}

func delUser(id string, want models.Outcome) orgStep {
	return orgStep{delUser: id, want: []models.Outcome{want}}
}

// orgView and memView are the parts of rows rules 8–10 speak about.
type orgView struct {
	ID                  string
	Name, Slug          *string
	Tier                string
	MembersCount        *int64
	ClerkUpdatedAt      int64
	Deleted, HasRaw     bool
	Source              models.Source
	CreatedByKeptOnTomb bool
}

type memView struct {
	ID, Org, User, Role string
	Created, Updated    int64
	Deleted, HasRaw     bool
}

func liveOrg(id string, updatedAt int64, tier string) orgView {
	return orgView{ID: id, Name: ptr(fmt.Sprintf("Org %d", updatedAt)), Slug: ptr(id), Tier: tier,
		MembersCount: ptr(updatedAt), ClerkUpdatedAt: updatedAt, HasRaw: true, Source: models.SourceWebhook}
}

func tombOrg(id string, updatedAt int64, tier string, membersCount *int64) orgView {
	return orgView{ID: id, Tier: tier, MembersCount: membersCount, ClerkUpdatedAt: updatedAt, Deleted: true,
		Source: models.SourceWebhook}
}

func liveMem(id, org, user string, created, updated int64, role string) memView {
	return memView{ID: id, Org: org, User: user, Role: role, Created: created, Updated: updated, HasRaw: true}
}

func tombMem(id, org, user string, created, updated int64, role string) memView {
	return memView{ID: id, Org: org, User: user, Role: role, Created: created, Updated: updated, Deleted: true}
}

func TestOrgRules(t *testing.T) {
	const a, b, m1, m2, u1, u2 = "org_a", "org_b", "orgmem_1", "orgmem_2", "user_1", "user_2"
	cases := []struct {
		name  string
		steps []orgStep
		orgs  []orgView
		mems  []memView
	}{
		// Rule 8: organizations.
		{"8: new organization is created FREE", []orgStep{
			upOrg(orgSnap(a, 10), models.Created),
		}, []orgView{liveOrg(a, 10, "FREE")}, nil},
		{"8: newer snapshot wins, older and equal change nothing", []orgStep{
			upOrg(orgSnap(a, 10), models.Created),
			upOrg(orgSnap(a, 20), models.Updated),
			upOrg(orgSnap(a, 15), models.Stale),
			upOrg(orgSnap(a, 20, orgTier("PRO")), models.Unchanged),
		}, []orgView{liveOrg(a, 20, "FREE")}, nil},
		{"8: tier from public_metadata, kept by snapshots without one", []orgStep{
			upOrg(orgSnap(a, 10, orgTier("PRO")), models.Created),
			upOrg(orgSnap(a, 20), models.Updated),
		}, []orgView{liveOrg(a, 20, "PRO")}, nil},
		{"8: tier set by the application survives sync", []orgStep{
			upOrg(orgSnap(a, 10), models.Created),
			{setTier: [2]string{a, "MAXX"}},
			upOrg(orgSnap(a, 20), models.Updated),
		}, []orgView{liveOrg(a, 20, "MAXX")}, nil},
		{"8: a membership event applies its organization", []orgStep{
			upOrg(orgSnap(a, 10), models.Created),
			upMem(withOrg(memSnap(m1, a, u1, 5, 5, "org:member"), orgSnap(a, 12, orgTier("PRO"))), models.Updated, models.Created),
			upMem(withOrg(memSnap(m1, a, u1, 5, 6, "org:admin"), orgSnap(a, 11)), models.Stale, models.Updated),
		}, []orgView{liveOrg(a, 12, "PRO")}, []memView{liveMem(m1, a, u1, 5, 6, "org:admin")}},
		{"8: deletion is a PII-free final tombstone that keeps the tier and takes live memberships", []orgStep{
			upOrg(orgSnap(a, 10, orgTier("PRO")), models.Created),
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Created),
			upMem(memSnap(m2, a, u2, 6, 6, "org:admin"), models.Created),
			delOrg(a, models.Deleted),
			upOrg(orgSnap(a, 30), models.Gone),
			delOrg(a, models.Gone),
			upMem(memSnap(m1, a, u1, 5, 9, "org:admin"), models.Gone),
		}, []orgView{tombOrg(a, 10, "PRO", ptr(int64(10)))},
			[]memView{tombMem(m1, a, u1, 5, 5, "org:member"), tombMem(m2, a, u2, 6, 6, "org:admin")}},
		{"8: deletion of an unknown organization is a tombstone a late created cannot revive", []orgStep{
			delOrg(a, models.Deleted),
			upOrg(orgSnap(a, 10), models.Gone),
		}, []orgView{tombOrg(a, 0, "FREE", nil)}, nil},
		{"8: deleting one organization leaves another's memberships", []orgStep{
			upMem(withOrg(memSnap(m1, a, u1, 5, 5, "r"), orgSnap(a, 1)), models.Created, models.Created),
			upMem(withOrg(memSnap(m2, b, u1, 5, 5, "r"), orgSnap(b, 1)), models.Created, models.Created),
			delOrg(a, models.Deleted),
		}, []orgView{tombOrg(a, 1, "FREE", ptr(int64(1))), liveOrg(b, 1, "FREE")},
			[]memView{tombMem(m1, a, u1, 5, 5, "r"), liveMem(m2, b, u1, 5, 5, "r")}},

		// Rule 9: memberships.
		{"9: newer membership wins, older and equal change nothing", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Created),
			upMem(memSnap(m1, a, u1, 5, 8, "org:admin"), models.Updated),
			upMem(memSnap(m1, a, u1, 5, 7, "org:member"), models.Stale),
			upMem(memSnap(m1, a, u1, 5, 8, "org:member"), models.Unchanged),
		}, nil, []memView{liveMem(m1, a, u1, 5, 8, "org:admin")}},
		{"9: deletion is final whatever its updated_at", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Created),
			upMem(memSnap(m1, a, u1, 5, 8, "org:admin"), models.Updated),
			delMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 20, "org:admin"), models.Gone),
			delMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Gone),
		}, nil, []memView{tombMem(m1, a, u1, 5, 8, "org:admin")}},
		{"9: deletion of an unknown membership is a tombstone from its payload", []orgStep{
			delMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 4, "org:member"), models.Gone),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:member")}},
		{"9: a membership of a tombstoned organization is stored as a tombstone", []orgStep{
			delOrg(a, models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Deleted),
		}, []orgView{tombOrg(a, 0, "FREE", nil)}, []memView{tombMem(m1, a, u1, 5, 5, "org:member")}},
		{"9: a membership of a tombstoned user is stored as a tombstone", []orgStep{
			delUser(u1, models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Deleted),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:member")}},
		{"9: user.deleted tombstones every live membership of the user, no other", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "org:member"), models.Created),
			upMem(memSnap("orgmem_3", b, u1, 5, 5, "org:member"), models.Created),
			upMem(memSnap(m2, a, u2, 5, 5, "org:member"), models.Created),
			delUser(u1, models.Deleted),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:member"), liveMem(m2, a, u2, 5, 5, "org:member"),
			tombMem("orgmem_3", b, u1, 5, 5, "org:member")}},

		// Rule 10: one live membership per pair.
		{"10: re-added user: the newer membership stays live", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "org:admin"), models.Created),
			upMem(memSnap(m2, a, u1, 9, 9, "org:member"), models.Created),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:admin"), liveMem(m2, a, u1, 9, 9, "org:member")}},
		{"10: the older membership arriving last is stored as a tombstone", []orgStep{
			upMem(memSnap(m2, a, u1, 9, 9, "org:member"), models.Created),
			upMem(memSnap(m1, a, u1, 5, 5, "org:admin"), models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 6, "org:admin"), models.Gone),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:admin"), liveMem(m2, a, u1, 9, 9, "org:member")}},
		{"10: re-creation before the old one's deletion arrives", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "org:admin"), models.Created),
			upMem(memSnap(m2, a, u1, 9, 9, "org:member"), models.Created),
			delMem(memSnap(m1, a, u1, 5, 5, "org:admin"), models.Gone),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:admin"), liveMem(m2, a, u1, 9, 9, "org:member")}},
		{"10: a newer tombstoned membership still outranks a late older one", []orgStep{
			delMem(memSnap(m2, a, u1, 9, 9, "org:member"), models.Deleted),
			upMem(memSnap(m1, a, u1, 5, 5, "org:admin"), models.Deleted),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "org:admin"), tombMem(m2, a, u1, 9, 9, "org:member")}},
		{"10: equal created_at: the larger id stays live, either order", []orgStep{
			upMem(memSnap(m2, a, u1, 5, 5, "r"), models.Created),
			upMem(memSnap(m1, a, u1, 5, 5, "r"), models.Deleted),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "r"), liveMem(m2, a, u1, 5, 5, "r")}},

		// Login-time sync's pruning of memberships Clerk no longer lists.
		{"prune: unlisted live memberships created before the listing", []orgStep{
			upMem(memSnap(m1, a, u1, 5, 5, "r"), models.Created),
			upMem(memSnap(m2, b, u1, 50, 50, "r"), models.Created),
			upMem(memSnap("orgmem_3", "org_c", u1, 6, 6, "r"), models.Created),
			pruneMem(u1, []string{"orgmem_3"}, 40, models.Deleted),
			pruneMem(u1, []string{"orgmem_3"}, 40, models.Unchanged),
		}, nil, []memView{tombMem(m1, a, u1, 5, 5, "r"), liveMem(m2, b, u1, 50, 50, "r"), liveMem("orgmem_3", "org_c", u1, 6, 6, "r")}},
	}
	for _, tc := range cases {
		for _, batched := range []bool{false, true} {
			name := tc.name
			if batched {
				name += " (batched)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
					runOrgSteps(t, db, tc.steps, batched)
					if diff := cmp.Diff(tc.orgs, orgTable(t, db)); diff != "" {
						t.Errorf("organizations (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(tc.mems, memTable(t, db)); diff != "" {
						t.Errorf("memberships (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// runOrgSteps applies the steps, each in its own transaction, or with
// batched set, runs of consecutive changes in one ApplyOrgChanges call.
func runOrgSteps(t *testing.T, db *gorm.DB, steps []orgStep, batched bool) {
	t.Helper()
	ctx := context.Background()
	var pending []models.Change
	var want []models.Outcome
	flush := func() {
		if len(pending) == 0 {
			return
		}
		got, err := models.Apply(ctx, db, pending, models.SourceWebhook)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("outcomes of %d changes (-want +got):\n%s", len(pending), diff)
		}
		pending, want = nil, nil
	}
	for _, st := range steps {
		switch {
		case st.delUser != "":
			flush()
			got, err := models.Tombstone(ctx, db, st.delUser, models.SourceWebhook)
			if err != nil || got != st.want[0] {
				t.Fatalf("delete user %s = %v, %v; want %v", st.delUser, got, err, st.want[0])
			}
		case st.setTier[0] != "":
			flush()
			if err := db.Model(&models.Organization{}).Where("id = ?", st.setTier[0]).Update("tier", st.setTier[1]).Error; err != nil {
				t.Fatal(err)
			}
		default:
			pending, want = append(pending, st.changes...), append(want, st.want...)
			if !batched {
				flush()
			}
		}
	}
	flush()
}

func orgTable(t *testing.T, db *gorm.DB) []orgView {
	t.Helper()
	var rows []models.Organization
	if err := db.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []orgView
	for _, o := range rows {
		v, err := orgViewOf(o)
		if err != nil {
			t.Error(err)
		}
		out = append(out, v)
	}
	return out
}

// orgViewOf is what the tests compare of an organization row; an error
// when a tombstone kept what it must not.
func orgViewOf(o models.Organization) (orgView, error) {
	v := orgView{ID: o.ID, Name: o.Name, Slug: o.Slug, Tier: o.Tier, MembersCount: o.MembersCount,
		ClerkUpdatedAt: o.ClerkUpdatedAt, Deleted: o.Deleted(), HasRaw: o.RawJSON != nil, Source: o.SyncSource}
	if o.Deleted() && (o.ImageURL != nil || o.CreatedBy == nil && o.ClerkUpdatedAt > 0) {
		return v, fmt.Errorf("tombstone %s: image_url %v, created_by %v", o.ID, o.ImageURL, o.CreatedBy)
	}
	return v, nil
}

func memTable(t *testing.T, db *gorm.DB) []memView {
	t.Helper()
	var rows []models.Membership
	if err := db.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []memView
	for _, m := range rows {
		out = append(out, memViewOf(m))
	}
	return out
}

func memViewOf(m models.Membership) memView {
	return memView{ID: m.ID, Org: m.OrganizationID, User: m.UserID, Role: m.Role,
		Created: m.ClerkCreatedAt, Updated: m.ClerkUpdatedAt, Deleted: m.Deleted(), HasRaw: m.RawJSON != nil}
}

// Rule 7 for organization webhooks: a delivery that is not newer than the
// row (older, or the same snapshot again) is answered stale and leaves the
// rows as they were, updated_at included.
func TestStaleOrgWebhooksWriteNothing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		org := func(svixID string, at int64) models.Event {
			return models.Event{SvixID: svixID, Type: "organization.updated", Kind: models.EventOrgUpsert,
				UserID: "org_r7", Org: orgSnap("org_r7", at)}
		}
		mem := func(svixID string, at int64) models.Event {
			return memEvent(svixID, models.EventMembershipUpsert,
				memSnap("orgmem_r7", "org_r7", "user_r7", 1, at, "org:member"), orgSnap("org_r7", 10))
		}
		for _, ev := range []models.Event{org("r1", 10), mem("r2", 10)} {
			if res, err := modelstest.ProcessEvent(ctx, db, ev); err != nil || res.Outcome != models.EventApplied {
				t.Fatalf("%s: %+v, %v", ev.SvixID, res, err)
			}
		}
		var before struct{ Org, Mem time.Time }
		read := func(into *struct{ Org, Mem time.Time }) {
			t.Helper()
			if err := db.Table("organizations").Where("id = ?", "org_r7").Select("updated_at").Scan(&into.Org).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Table("organization_memberships").Where("id = ?", "orgmem_r7").Select("updated_at").Scan(&into.Mem).Error; err != nil {
				t.Fatal(err)
			}
		}
		read(&before)
		time.Sleep(2 * time.Millisecond) // a write now would move updated_at
		for _, ev := range []models.Event{org("r3", 9), org("r4", 10), mem("r5", 9), mem("r6", 10)} {
			res, err := modelstest.ProcessEvent(ctx, db, ev)
			if err != nil || res.Outcome != models.EventStale {
				t.Errorf("%s: %+v, %v; want stale", ev.SvixID, res, err)
			}
		}
		var after struct{ Org, Mem time.Time }
		read(&after)
		if !after.Org.Equal(before.Org) || !after.Mem.Equal(before.Mem) {
			t.Errorf("updated_at moved: organization %v → %v, membership %v → %v",
				before.Org, after.Org, before.Mem, after.Mem)
		}
	})
}
