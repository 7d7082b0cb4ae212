package clerkapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
)

func TestOrganizationFixtures(t *testing.T) {
	ev, _, err := clerkapi.DecodeEvent("msg_1", readFixture(t, "clerk_organization_created_example.json"))
	if err != nil {
		t.Fatal(err)
	}
	org := ev.Org
	org.RawJSON = ""
	want := models.OrgSnapshot{ID: "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S", Name: ptr("Acme Corp"), Slug: ptr("acme-corp"),
		ImageURL: ptr("https://img.clerk.com/xxxxxx"), CreatedBy: ptr("user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"),
		MembersCount: ptr(int64(1)), UpdatedAt: 1716883200000}
	if diff := cmp.Diff(want, org); diff != "" {
		t.Errorf("organization (-want +got):\n%s", diff)
	}
	for _, name := range []string{"clerk_organization_membership_created_example.json", "clerk_organization_membership_deleted_example.json"} {
		ev, _, err := clerkapi.DecodeEvent("msg_1", readFixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		m := ev.Membership
		if m.ID != "orgmem_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || m.OrganizationID != want.ID || m.UserID != "user_2h8op3Isl1QR7tKu5FGNfaLKEoU" ||
			m.Role != "org:member" || m.CreatedAt != 1716883200000 || m.Org == nil || m.Org.ID != want.ID || !json.Valid([]byte(m.RawJSON)) {
			t.Errorf("%s: membership = %+v", name, m)
		}
	}
}

// FuzzOrgSnapshots maps arbitrary organization and membership objects:
// nothing panics, errors are the package's, and a mapped snapshot keeps
// the rules' invariants (an id, a valid tier, storable raw JSON, a
// membership's organization and user).
func FuzzOrgSnapshots(f *testing.F) {
	for _, name := range []string{"clerk_organization_created_example.json", "clerk_organization_membership_created_example.json",
		"clerk_organization_membership_deleted_example.json", "clerk_organization_deleted_example.json"} {
		var env struct{ Data json.RawMessage }
		json.Unmarshal(readFixture(f, name), &env)
		f.Add([]byte(env.Data))
	}
	f.Add([]byte(`{"id":"org_1","name":"","public_metadata":{"tier":"Maxx"},"members_count":null}`))
	f.Add([]byte(`{"id":"orgmem_1","organization":{"id":"org_1","name":"a\u0000"},"public_user_data":{"user_id":"u"},"role":"\ud800"}`))
	f.Add([]byte(`{"id":"orgmem_1","organization":[],"public_user_data":{}}`))
	f.Add([]byte(`{"id":"orgmem_1","organization":{"id":"org_1","members_count":3000000000},"public_user_data":{"user_id":"u\u0000"},"role":"r"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if o, err := clerkapi.OrgSnapshotFromJSON(raw); err != nil {
			if !errors.Is(err, clerkapi.ErrInvalidOrganization) {
				t.Fatalf("error %v is not ErrInvalidOrganization", err)
			}
		} else {
			checkOrg(t, o)
		}
		m, err := clerkapi.MembershipSnapshotFromJSON(raw)
		if err != nil {
			if !errors.Is(err, clerkapi.ErrInvalidMembership) {
				t.Fatalf("error %v is not ErrInvalidMembership", err)
			}
			return
		}
		if m.ID == "" || m.UserID == "" || m.Org == nil || m.OrganizationID != m.Org.ID || !json.Valid([]byte(m.RawJSON)) {
			t.Fatalf("membership %+v", m)
		}
		wantStorable(t, "membership id", &m.ID, 255)
		wantStorable(t, "user_id", &m.UserID, 255)
		wantStorable(t, "role", &m.Role, 255)
		checkOrg(t, *m.Org)
	})
}

func checkOrg(t *testing.T, o models.OrgSnapshot) {
	t.Helper()
	if o.ID == "" || !json.Valid([]byte(o.RawJSON)) {
		t.Fatalf("organization id %q, raw %q", o.ID, o.RawJSON)
	}
	switch o.Tier {
	case "", models.TierFree, models.TierPro, models.TierMaxx:
	default:
		t.Fatalf("tier %q", o.Tier)
	}
	for _, p := range []*string{o.Name, o.Slug, o.ImageURL, o.CreatedBy} {
		if p != nil && *p == "" {
			t.Fatal("empty string stored instead of NULL")
		}
	}
	wantStorable(t, "organization id", &o.ID, 255)
	if o.MembersCount != nil && (*o.MembersCount > math.MaxInt32 || *o.MembersCount < math.MinInt32) {
		t.Fatalf("members_count %d does not fit an INTEGER", *o.MembersCount)
	}
}

// A user in more organizations than one page holds (Clerk's limit is 500):
// ListUserMemberships, which the login-time sync prunes against, pages
// through all of them, and only through that user's.
func TestListUserMembershipsPages(t *testing.T) {
	fake := clerktest.New(t)
	const n = clerkapi.MaxPageSize + 7
	for i := range n {
		fake.PutMembership(clerktest.Membership(fmt.Sprintf("orgmem_%04d", i), fmt.Sprintf("org_%04d", i),
			"user_many", int64(i+1), "org:member", nil))
	}
	fake.PutMembership(clerktest.Membership("orgmem_other", "org_0000", "user_other", 1, "org:member", nil))
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	got, err := client.ListUserMemberships(context.Background(), "user_many")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d memberships, want %d", len(got), n)
	}
	for i, m := range got {
		if want := fmt.Sprintf("orgmem_%04d", i); m.ID != want || m.UserID != "user_many" {
			t.Fatalf("membership %d = %s of %s, want %s of user_many", i, m.ID, m.UserID, want)
		}
	}
	if hits := fake.Hits(clerktest.OpListUserMemberships); hits != 2 {
		t.Errorf("%d list calls, want 2 pages", hits)
	}
}

// A 404 names what is missing only where the path names an object: a user
// or an organization. A 404 for the JWKS or a listing means a wrong URL, a
// refusal that asking again will not fix, never "user not found" (which
// would turn the login-time sync's answer into 410 Gone).
func TestNotFoundMeansWhatThePathNames(t *testing.T) {
	fake := clerktest.New(t)
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	ctx := context.Background()

	if _, err := client.GetUser(ctx, "user_missing"); !errors.Is(err, clerkapi.ErrUserNotFound) {
		t.Errorf("get user: %v, want ErrUserNotFound", err)
	}
	err := client.GetOrganization(ctx, "org_missing")
	if !errors.Is(err, clerkapi.ErrOrganizationNotFound) || errors.Is(err, clerkapi.ErrUserNotFound) {
		t.Errorf("get organization: %v, want ErrOrganizationNotFound only", err)
	}
	for _, c := range []struct {
		op   string
		call func() error
	}{
		{clerktest.OpJWKS, func() error { _, err := client.JWKS(ctx); return err }},
		{clerktest.OpListUsers, func() error { _, err := client.ListUsers(ctx, 0, 10); return err }},
		{clerktest.OpListOrganizations, func() error { _, err := client.ListOrganizations(ctx, 0, 10); return err }},
	} {
		fake.FailNext(c.op, clerktest.Failure{Status: 404})
		err := c.call()
		if !errors.Is(err, clerkapi.ErrRejected) || errors.Is(err, clerkapi.ErrUserNotFound) || clerkapi.Retryable(err) {
			t.Errorf("%s answered 404: %v, want ErrRejected, not retryable", c.op, err)
		}
	}
}
