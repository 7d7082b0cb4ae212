package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

func orgEvent(typ, id string, updatedAt int64) []byte {
	return fmt.Appendf(nil, `{"object":"event","type":%q,"data":{"object":"organization","id":%q,
		"name":"Acme","slug":"acme","public_metadata":{},"created_at":1,"updated_at":%d}}`, typ, id, updatedAt)
}

func membershipEvent(typ, id, orgID, userID string, updatedAt, orgUpdatedAt int64) []byte {
	return fmt.Appendf(nil, `{"object":"event","type":%q,"data":{"object":"organization_membership","id":%q,
		"role":"org:member","created_at":1,"updated_at":%d,
		"organization":{"object":"organization","id":%q,"name":"Acme","slug":"acme","public_metadata":{},"created_at":1,"updated_at":%d},
		"public_user_data":{"user_id":%q,"first_name":"Jane","identifier":"jane@acme.example"}}}`,
		typ, id, updatedAt, orgID, orgUpdatedAt, userID)
}

// Rule 11: a signed event whose snapshot (user, organization, membership,
// or a membership's organization) is dated more than 24 hours ahead is
// answered 400, applies and records nothing, is counted and logged by id; a
// redelivery is refused again; just under the bound is applied, and a
// membership deletion is not refused for its own updated_at.
func TestWebhookRefusesFutureTimestamps(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		v, err := handlers.NewVerifier([]string{secret1})
		if err != nil {
			t.Fatal(err)
		}
		m, log := metrics.New("test"), &lockedBuffer{}
		h := handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.NewJSONHandler(log, nil)), Webhooks: v, Metrics: m})
		now := time.Now()
		past := now.Add(-time.Hour).UnixMilli()
		year2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		under := now.Add(models.MaxClockSkew - time.Minute).UnixMilli()
		send := func(msgID string, body []byte, status int, answer string) {
			t.Helper()
			wantResponse(t, post(h, body, signed(t, secret1, msgID, time.Now(), body)), status, answer)
		}
		const applied, refused = `{"outcome":"applied"}`, `{"error":"updated_at is more than 24h in the future"}`

		send("msg_user", userEvent("user.created", "user_1", past, "ada@example.com"), 200, applied)
		send("msg_org", orgEvent("organization.created", "org_1", past), 200, applied)
		send("msg_mem", membershipEvent("organizationMembership.created", "orgmem_1", "org_1", "user_1", past, past), 200, applied)
		before := rowStamps(t, db)

		send("msg_f1", userEvent("user.updated", "user_1", year2100, "evil@example.com"), 400, refused)
		send("msg_f1", userEvent("user.updated", "user_1", year2100, "evil@example.com"), 400, refused)
		send("msg_f2", userEvent("user.created", "user_2", year2100, "new@example.com"), 400, refused)
		send("msg_f3", orgEvent("organization.updated", "org_1", year2100), 400, refused)
		send("msg_f4", membershipEvent("organizationMembership.updated", "orgmem_1", "org_1", "user_1", year2100, past), 400, refused)
		send("msg_f5", membershipEvent("organizationMembership.updated", "orgmem_1", "org_1", "user_1", past+1, year2100), 400, refused)
		send("msg_f6", membershipEvent("organizationMembership.created", "orgmem_2", "org_2", "user_1", past, year2100), 400, refused)

		if diff := cmp.Diff(before, rowStamps(t, db)); diff != "" {
			t.Errorf("refused events wrote rows (-before +after):\n%s", diff)
		}
		u, err := modelstest.FindUser(context.Background(), db, "user_1")
		if err != nil || u.Email == nil || *u.Email != "ada@example.com" || u.ClerkUpdatedAt != past {
			t.Errorf("user_1 = email %v clerk_updated_at %d, %v; want ada@example.com at %d", u.Email, u.ClerkUpdatedAt, err, past)
		}
		var org models.Organization
		if err := db.Where("id = ?", "org_1").Take(&org).Error; err != nil || org.ClerkUpdatedAt != past {
			t.Errorf("org_1 clerk_updated_at = %d, %v; want %d", org.ClerkUpdatedAt, err, past)
		}
		var mem models.Membership
		if err := db.Where("id = ?", "orgmem_1").Take(&mem).Error; err != nil || mem.ClerkUpdatedAt != past || mem.Deleted() {
			t.Errorf("orgmem_1 = clerk_updated_at %d deleted %v, %v; want live at %d", mem.ClerkUpdatedAt, mem.Deleted(), err, past)
		}
		wantEvents(t, db, 3)

		send("msg_under", userEvent("user.created", "user_3", under, "grace@example.com"), 200, applied)
		send("msg_mem_deleted", membershipEvent("organizationMembership.deleted", "orgmem_1", "org_1", "user_1", year2100, past), 200, applied)
		if err := db.Where("id = ?", "orgmem_1").Take(&mem).Error; err != nil || !mem.Deleted() {
			t.Errorf("orgmem_1 after its deletion: deleted %v, %v; want a tombstone", mem.Deleted(), err)
		}
		wantEvents(t, db, 5)
		if got := eventIDs(t, db); !cmp.Equal(got, []string{"msg_mem", "msg_mem_deleted", "msg_org", "msg_under", "msg_user"}) {
			t.Errorf("recorded svix ids = %v", got)
		}

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for series, want := range map[string]string{
			`usersync_webhook_events_total{outcome="future_timestamp",type="user.updated"}`:                   "2",
			`usersync_webhook_events_total{outcome="future_timestamp",type="user.created"}`:                   "1",
			`usersync_webhook_events_total{outcome="future_timestamp",type="organization.updated"}`:           "1",
			`usersync_webhook_events_total{outcome="future_timestamp",type="organizationMembership.updated"}`: "2",
			`usersync_webhook_events_total{outcome="future_timestamp",type="organizationMembership.created"}`: "1",
			`usersync_webhook_events_total{outcome="applied",type="user.created"}`:                            "2",
			`usersync_webhook_events_total{outcome="applied",type="organizationMembership.deleted"}`:          "1",
		} {
			if got := metricValue(t, rec.Body.String(), series); got != want {
				t.Errorf("%s = %s, want %s", series, got, want)
			}
		}

		text := log.String()
		if n := strings.Count(text, `"outcome":"future_timestamp"`); n != 7 {
			t.Errorf("log lines with outcome future_timestamp = %d, want 7:\n%s", n, text)
		}
		for _, want := range []string{`"svix_id":"msg_f1","user_id":"user_1","event_type":"user.updated","outcome":"future_timestamp"`,
			"organization org_1: updated_at " + fmt.Sprint(year2100)} {
			if !strings.Contains(text, want) {
				t.Errorf("log lacks %s:\n%s", want, text)
			}
		}
		for _, personal := range []string{"evil@example.com", "new@example.com", "jane@acme.example", "Jane", "Acme"} {
			if strings.Contains(text, personal) {
				t.Errorf("log holds %q:\n%s", personal, text)
			}
		}
	})
}

// Rule 11 at login: a row dated in 2100, and another such row holding the
// user's address, yield to the snapshot the login sync fetches from Clerk;
// webhooks order the row again afterwards.
func TestSyncOverwritesFutureDatedRow(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		year2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		past := time.Now().Add(-time.Hour).UnixMilli()
		for id, addr := range map[string]string{"user_1": "old@example.com", "user_2": "ada@example.com"} {
			poisoned := models.Snapshot{ID: id, Email: ptr(addr), UpdatedAt: year2100}
			if _, err := models.ApplySnapshot(ctx, db, poisoned, models.SourceBackfill); err != nil {
				t.Fatal(err)
			}
		}
		env := newSyncEnv(t, db, syncOpts{})
		env.fake.PutUser(clerktest.User("user_1", past, "ada@example.com", nil))

		got := decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_1"))}))
		if got.Outcome != "updated" || got.User.Email == nil || *got.User.Email != "ada@example.com" {
			t.Fatalf("sync = outcome %s email %v, want updated ada@example.com", got.Outcome, got.User.Email)
		}
		u1, err := modelstest.FindUser(ctx, db, "user_1")
		if err != nil || u1.ClerkUpdatedAt != past || u1.SyncSource != models.SourceLogin {
			t.Errorf("user_1 = clerk_updated_at %d source %s, %v; want %d login", u1.ClerkUpdatedAt, u1.SyncSource, err, past)
		}
		u2, err := modelstest.FindUser(ctx, db, "user_2")
		if err != nil || u2.Email != nil || u2.ClerkUpdatedAt != year2100 {
			t.Errorf("user_2 = email %v clerk_updated_at %d, %v; want no email, still at %d", u2.Email, u2.ClerkUpdatedAt, err, year2100)
		}
		body := userEvent("user.updated", "user_1", past+1, "ada@example.com")
		wantResponse(t, post(env.h, body, signed(t, secret1, "msg_after", time.Now(), body)), 200, `{"outcome":"applied"}`)
	})
}
