package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

const (
	fixtureOrg        = "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
	fixtureMembership = "orgmem_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "clerk", name))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Clerk's documented organization and membership payloads, signed and
// posted exactly as they are, apply; the other organization-related types
// are recorded as ignored; the metrics count every type and outcome.
func TestWebhookOrganizationExamples(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		v, err := handlers.NewVerifier([]string{secret1})
		if err != nil {
			t.Fatal(err)
		}
		m := metrics.New("test")
		h := handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhooks: v, Metrics: m})
		send := func(msgID string, body []byte, want string) {
			t.Helper()
			wantResponse(t, post(h, body, signed(t, secret1, msgID, time.Now(), body)), 200, `{"outcome":"`+want+`"}`)
		}
		send("msg_org_created", fixture(t, "clerk_organization_created_example.json"), "applied")
		send("msg_mem_created", fixture(t, "clerk_organization_membership_created_example.json"), "applied")
		send("msg_mem_created", fixture(t, "clerk_organization_membership_created_example.json"), "duplicate")

		orgs, err := modelstest.FindUserOrganizations(context.Background(), db, "user_2h8op3Isl1QR7tKu5FGNfaLKEoU")
		want := []models.UserOrganization{{ID: fixtureOrg, Name: ptr("Acme Corp"), Slug: ptr("acme-corp"), Role: "org:member", Tier: "FREE"}}
		if err != nil || !cmp.Equal(want, orgs) {
			t.Fatalf("organizations of the member = %+v, %v; want %+v", orgs, err, want)
		}
		// The deletion carries the same updated_at as the creation: final anyway (rule 9).
		send("msg_mem_deleted", fixture(t, "clerk_organization_membership_deleted_example.json"), "applied")
		send("msg_mem_created_again", fixture(t, "clerk_organization_membership_created_example.json"), "stale")
		send("msg_org_deleted", fixture(t, "clerk_organization_deleted_example.json"), "applied")
		send("msg_org_deleted_again", fixture(t, "clerk_organization_deleted_example.json"), "stale")
		for i, typ := range []string{"organizationInvitation.created", "organizationDomain.created", "role.created", "permission.created"} {
			body := fmt.Appendf(nil, `{"object":"event","type":%q,"data":{"object":"x","id":"x_%d"}}`, typ, i)
			send(fmt.Sprintf("msg_ignored_%d", i), body, "ignored")
		}

		var org models.Organization
		if err := db.Where("id = ?", fixtureOrg).Take(&org).Error; err != nil {
			t.Fatal(err)
		}
		if !org.Deleted() || org.Name != nil || org.Slug != nil || org.ImageURL != nil || org.RawJSON != nil ||
			org.ClerkUpdatedAt != 1716883200000 || org.Tier != "FREE" {
			t.Errorf("organization after deletion = %+v, want a PII-free tombstone", org)
		}
		var mem models.Membership
		if err := db.Where("id = ?", fixtureMembership).Take(&mem).Error; err != nil {
			t.Fatal(err)
		}
		if !mem.Deleted() || mem.RawJSON != nil || mem.OrganizationID != fixtureOrg || mem.UserID != "user_2h8op3Isl1QR7tKu5FGNfaLKEoU" ||
			mem.Role != "org:member" || mem.ClerkCreatedAt != 1716883200000 {
			t.Errorf("membership after deletion = %+v", mem)
		}
		var log []string
		var events []models.WebhookEvent
		db.Order("received_at, svix_id").Find(&events)
		for _, e := range events {
			id := ""
			if e.UserID != nil {
				id = *e.UserID
			}
			log = append(log, fmt.Sprintf("%s %s %s", e.EventType, id, e.Outcome))
		}
		wantLog := []string{
			"organization.created " + fixtureOrg + " applied",
			"organizationMembership.created " + fixtureMembership + " applied",
			"organizationMembership.deleted " + fixtureMembership + " applied",
			"organizationMembership.created " + fixtureMembership + " stale",
			"organization.deleted " + fixtureOrg + " applied",
			"organization.deleted " + fixtureOrg + " stale",
			"organizationInvitation.created  ignored",
			"organizationDomain.created  ignored",
			"role.created  ignored",
			"permission.created  ignored",
		}
		if diff := cmp.Diff(wantLog, log); diff != "" {
			t.Errorf("webhook_events (-want +got):\n%s", diff)
		}

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, series := range []string{
			`usersync_webhook_events_total{outcome="applied",type="organization.created"} 1`,
			`usersync_webhook_events_total{outcome="applied",type="organizationMembership.deleted"} 1`,
			`usersync_webhook_events_total{outcome="duplicate",type="organizationMembership.created"} 1`,
			`usersync_webhook_events_total{outcome="stale",type="organizationMembership.created"} 1`,
			`usersync_webhook_events_total{outcome="stale",type="organization.deleted"} 1`,
			`usersync_webhook_events_total{outcome="ignored",type="organizationInvitation.created"} 1`,
		} {
			if !strings.Contains(rec.Body.String(), series) {
				t.Errorf("/metrics lacks %s", series)
			}
		}
	})
}

// A membership event Clerk could not have sent (no user) is a client
// error, recorded nowhere; a deletion without its organization still
// deletes the id.
func TestWebhookMembershipPayloads(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		bad := []byte(`{"type":"organizationMembership.created","data":{"id":"orgmem_1","organization":{"id":"org_1"}}}`)
		rec := post(h, bad, signed(t, secret1, "msg_bad", time.Now(), bad))
		if rec.Code != 400 {
			t.Errorf("membership without public_user_data: %d %s, want 400", rec.Code, rec.Body)
		}
		minimal := []byte(`{"type":"organizationMembership.deleted","data":{"object":"organization_membership","id":"orgmem_1","deleted":true}}`)
		wantResponse(t, post(h, minimal, signed(t, secret1, "msg_min", time.Now(), minimal)), 200, `{"outcome":"applied"}`)
		wantEvents(t, db, 1)
	})
}

type orgSyncResponse struct {
	Outcome string
	User    struct {
		ID            string
		Organizations []models.UserOrganization
	}
}

// A login sync for a user in two organizations answers both with their
// roles, with one Clerk call for the memberships; a fresh answer reads
// them from the tables without calling Clerk; a membership Clerk no longer
// lists is tombstoned by the next non-fresh sync; a sync without news
// writes no row of either table.
func TestSyncAnswersOrganizations(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{freshness: time.Hour})
		f := env.fake
		f.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		f.PutOrganization(clerktest.Organization("org_a", 10, map[string]any{"name": "Acme", "slug": "acme",
			"public_metadata": map[string]any{"tier": "pro"}}))
		f.PutOrganization(clerktest.Organization("org_b", 10, map[string]any{"name": "Beta", "slug": "beta"}))
		f.PutMembership(clerktest.Membership("orgmem_a", "org_a", "user_1", 20, "org:admin", nil))
		f.PutMembership(clerktest.Membership("orgmem_b", "org_b", "user_1", 30, "org:member", nil))
		f.PutMembership(clerktest.Membership("orgmem_other", "org_b", "user_2", 30, "org:member", nil))
		call := func() orgSyncResponse {
			t.Helper()
			rec := env.call(syncCall{token: f.Token(clerktest.Claims("user_1"))})
			if rec.Code != 200 {
				t.Fatalf("sync: %d %s", rec.Code, rec.Body)
			}
			var r orgSyncResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		both := []models.UserOrganization{
			{ID: "org_a", Name: ptr("Acme"), Slug: ptr("acme"), Role: "org:admin", Tier: "PRO"},
			{ID: "org_b", Name: ptr("Beta"), Slug: ptr("beta"), Role: "org:member", Tier: "FREE"},
		}
		got := call()
		if diff := cmp.Diff(both, got.User.Organizations); got.Outcome != "created" || diff != "" {
			t.Fatalf("first sync: outcome %s, organizations (-want +got):\n%s", got.Outcome, diff)
		}
		if n := f.Hits(clerktest.OpListUserMemberships); n != 1 {
			t.Errorf("membership listings = %d, want 1", n)
		}
		if got = call(); got.Outcome != "fresh" || !cmp.Equal(both, got.User.Organizations) {
			t.Errorf("fresh answer = %+v, want both organizations", got)
		}
		if n := f.Hits(clerktest.OpListUserMemberships); n != 1 {
			t.Errorf("membership listings after a fresh answer = %d, want 1", n)
		}

		// Without news, a non-fresh sync writes nothing (rule 7).
		db.Model(&models.User{}).Where("id = ?", "user_1").Update("synced_at", time.Now().Add(-2*time.Hour))
		stamp := rowStamps(t, db)
		env2 := newSyncEnvSharing(t, env, db) // a second instance: no in-memory confirmation
		if got := env2.callOrgs(t, f.Token(clerktest.Claims("user_1"))); got.Outcome != "unchanged" || !cmp.Equal(both, got.User.Organizations) {
			t.Errorf("unchanged sync = %+v", got)
		}
		if diff := cmp.Diff(stamp, rowStamps(t, db)); diff != "" {
			t.Errorf("a sync without news wrote rows (-before +after):\n%s", diff)
		}

		// Removed from org_a in Clerk (the webhook was lost): the next sync drops it.
		f.DeleteMembership("orgmem_a")
		env3 := newSyncEnvSharing(t, env, db)
		got = env3.callOrgs(t, f.Token(clerktest.Claims("user_1")))
		if diff := cmp.Diff(both[1:], got.User.Organizations); diff != "" {
			t.Errorf("after removal (-want +got):\n%s", diff)
		}
		var mem models.Membership
		if err := db.Where("id = ?", "orgmem_a").Take(&mem).Error; err != nil || !mem.Deleted() || mem.SyncSource != models.SourceLogin {
			t.Errorf("removed membership = %+v, %v; want a tombstone from the login path", mem, err)
		}
	})
}

// newSyncEnvSharing is another server on the same fake Clerk and
// database: a second instance, which has no in-memory confirmations.
func newSyncEnvSharing(t *testing.T, env syncEnv, db *gorm.DB) orgEnv {
	t.Helper()
	return orgEnv{newSyncEnv(t, db, syncOpts{freshness: time.Hour, fake: env.fake})}
}

type orgEnv struct{ syncEnv }

func (e orgEnv) callOrgs(t *testing.T, token string) orgSyncResponse {
	t.Helper()
	rec := e.call(syncCall{token: token})
	if rec.Code != 200 {
		t.Fatalf("sync: %d %s", rec.Code, rec.Body)
	}
	var r orgSyncResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// rowStamps are every row's updated_at in both tables.
func rowStamps(t *testing.T, db *gorm.DB) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	var orgs []models.Organization
	var mems []models.Membership
	var users []models.User
	if err := db.Find(&orgs).Error; err != nil {
		t.Fatal(err)
	}
	db.Find(&mems)
	db.Find(&users)
	for _, o := range orgs {
		out[o.ID] = o.UpdatedAt
	}
	for _, m := range mems {
		out[m.ID] = m.UpdatedAt
	}
	for _, u := range users {
		out[u.ID] = u.UpdatedAt
	}
	return out
}
