package handlers_test

import (
	"bytes"
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
	svix "github.com/svix/svix-webhooks/go"
	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

const (
	secret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secret2 = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="
	other   = "whsec_bm90IGEgY29uZmlndXJlZCBzZWNyZXQ="
)

func newHandler(t testing.TB, db *gorm.DB, secrets ...string) http.Handler {
	t.Helper()
	v, err := handlers.NewVerifier(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhooks: v})
}

// signed returns Svix headers for body, signed with secret at ts.
func signed(t testing.TB, secret, msgID string, ts time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(msgID, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("svix-id", msgID)
	h.Set("svix-timestamp", fmt.Sprint(ts.Unix()))
	h.Set("svix-signature", sig)
	h.Set("Content-Type", "application/json")
	return h
}

func post(h http.Handler, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/webhooks/clerk", bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func userEvent(typ, id string, updatedAt int64, addr string) []byte {
	return []byte(fmt.Sprintf(`{"object":"event","type":%q,"data":{"object":"user","id":%q,"updated_at":%d,
		"first_name":"Ada","primary_email_address_id":"idn_1",
		"email_addresses":[{"id":"idn_1","email_address":%q,"verification":{"status":"verified"}}],
		"public_metadata":{}}}`, typ, id, updatedAt, addr))
}

func deletedEvent(id string) []byte {
	return []byte(fmt.Sprintf(`{"object":"event","type":"user.deleted","data":{"object":"user","id":%q,"deleted":true}}`, id))
}

func wantResponse(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || strings.TrimSpace(rec.Body.String()) != body {
		t.Fatalf("response = %d %s, want %d %s", rec.Code, strings.TrimSpace(rec.Body.String()), status, body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
}

func TestWebhookDeliveries(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		now := time.Now()
		steps := []struct {
			name, msgID string
			body        []byte
			status      int
			response    string
		}{
			{"created", "msg_1", userEvent("user.created", "user_1", 100, "Ada@Example.com"), 200, `{"outcome":"applied"}`},
			{"redelivery", "msg_1", userEvent("user.created", "user_1", 100, "Ada@Example.com"), 200, `{"outcome":"duplicate"}`},
			{"older update", "msg_2", userEvent("user.updated", "user_1", 50, "old@example.com"), 200, `{"outcome":"stale"}`},
			{"equal update", "msg_3", userEvent("user.updated", "user_1", 100, "eq@example.com"), 200, `{"outcome":"stale"}`},
			{"newer update", "msg_4", userEvent("user.updated", "user_1", 200, "ada@new.example"), 200, `{"outcome":"applied"}`},
			{"other type", "msg_5", []byte(`{"type":"session.created","data":{"id":"sess_1"}}`), 200, `{"outcome":"ignored"}`},
			{"deleted", "msg_6", deletedEvent("user_1"), 200, `{"outcome":"applied"}`},
			{"deleted again", "msg_7", deletedEvent("user_1"), 200, `{"outcome":"stale"}`},
			{"update after delete", "msg_8", userEvent("user.updated", "user_1", 300, "back@example.com"), 200, `{"outcome":"stale"}`},
		}
		for _, st := range steps {
			rec := post(h, st.body, signed(t, secret1, st.msgID, now, st.body))
			t.Run(st.name, func(t *testing.T) { wantResponse(t, rec, st.status, st.response) })
		}
		u, err := modelstest.FindUser(context.Background(), db, "user_1")
		if err != nil {
			t.Fatal(err)
		}
		if !u.Deleted() || u.Email != nil || u.ClerkUpdatedAt != 200 || u.SyncSource != models.SourceWebhook {
			t.Errorf("user_1 = deleted %v email %v clerk_updated_at %d source %s", u.Deleted(), u.Email, u.ClerkUpdatedAt, u.SyncSource)
		}
		wantEvents(t, db, 8)
		// The outcome recorded for each message is the one it was answered.
		var recorded []models.WebhookEvent
		if err := db.Order("svix_id").Find(&recorded).Error; err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range recorded {
			got[e.SvixID] = string(e.Outcome)
		}
		want := map[string]string{"msg_1": "applied", "msg_2": "stale", "msg_3": "stale", "msg_4": "applied",
			"msg_5": "ignored", "msg_6": "applied", "msg_7": "stale", "msg_8": "stale"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("recorded outcomes (-want +got):\n%s", diff)
		}
	})
}

func wantEvents(t *testing.T, db *gorm.DB, n int64) {
	t.Helper()
	var count int64
	if err := db.Model(&models.WebhookEvent{}).Count(&count).Error; err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("webhook_events rows = %d, want %d", count, n)
	}
}

func TestWebhookRejects(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		body := userEvent("user.created", "user_1", 100, "a@example.com")
		now := time.Now()
		good := func() http.Header { return signed(t, secret1, "msg_1", now, body) }
		without := func(name string) http.Header { hd := good(); hd.Del(name); return hd }
		cases := []struct {
			name   string
			body   []byte
			header http.Header
			status int
			errHas string
		}{
			{"no headers", body, http.Header{}, 400, "missing required headers"},
			{"no svix-id", body, without("svix-id"), 400, "missing required headers"},
			{"no svix-signature", body, without("svix-signature"), 400, "missing required headers"},
			{"no svix-timestamp", body, without("svix-timestamp"), 400, "missing required headers"},
			{"tampered body", bytes.Replace(body, []byte("a@example.com"), []byte("evil@example.com"), 1), good(), 400, "no matching signature"},
			{"other secret", body, signed(t, other, "msg_1", now, body), 400, "no matching signature"},
			{"timestamp too old", body, signed(t, secret1, "msg_1", now.Add(-6*time.Minute), body), 400, "too old"},
			{"timestamp too new", body, signed(t, secret1, "msg_1", now.Add(6*time.Minute), body), 400, "too new"},
			{"bad JSON", []byte(`{"type":`), signed(t, secret1, "msg_1", now, []byte(`{"type":`)), 400, "invalid JSON"},
			{"no type", []byte(`{"data":{"id":"user_1"}}`), signed(t, secret1, "msg_1", now, []byte(`{"data":{"id":"user_1"}}`)), 400, "no type"},
			{"no data.id", []byte(`{"type":"user.created","data":{}}`), signed(t, secret1, "msg_1", now, []byte(`{"type":"user.created","data":{}}`)), 400, "no data.id"},
			{"user not a user", []byte(`{"type":"user.created","data":{"id":"u","updated_at":"x"}}`),
				signed(t, secret1, "msg_1", now, []byte(`{"type":"user.created","data":{"id":"u","updated_at":"x"}}`)), 400, "invalid Clerk user"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				rec := post(h, tc.body, tc.header)
				var got struct{ Error string }
				if rec.Code != tc.status || json.Unmarshal(rec.Body.Bytes(), &got) != nil || !strings.Contains(got.Error, tc.errHas) {
					t.Fatalf("response = %d %s, want %d with error containing %q", rec.Code, rec.Body, tc.status, tc.errHas)
				}
			})
		}
		wantEvents(t, db, 0)
		if _, err := modelstest.FindUser(context.Background(), db, "user_1"); err != models.ErrNotFound {
			t.Errorf("user_1 after rejected deliveries: err = %v, want ErrNotFound", err)
		}
	})
}

func TestWebhookSignatureVariants(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1, secret2)
		now := time.Now()

		body := userEvent("user.created", "user_1", 1, "a@example.com")
		hd := signed(t, secret1, "msg_1", now, body)
		wrong := signed(t, other, "msg_1", now, body).Get("svix-signature")
		hd.Set("svix-signature", "v1a,garbage "+wrong+" "+hd.Get("svix-signature"))
		wantResponse(t, post(h, body, hd), 200, `{"outcome":"applied"}`)

		// Rotation: the second configured secret verifies too.
		body = userEvent("user.created", "user_2", 1, "b@example.com")
		wantResponse(t, post(h, body, signed(t, secret2, "msg_2", now, body)), 200, `{"outcome":"applied"}`)
		wantEvents(t, db, 2)
	})
}

func TestWebhookBodyLimit(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		pad := strings.Repeat("x", 2<<20)
		body := []byte(`{"type":"user.created","data":{"id":"user_1","pad":"` + pad + `"}}`)
		wantResponse(t, post(h, body, signed(t, secret1, "msg_1", time.Now(), body)), 413, `{"error":"request body too large"}`)

		// Just under the limit is read and verified (and then rejected as no user).
		small := []byte(`{"type":"user.created","data":{"id":"user_1","updated_at":"` + strings.Repeat("x", 1<<20-100) + `"}}`)
		rec := post(h, small, signed(t, secret1, "msg_2", time.Now(), small))
		if rec.Code != 400 {
			t.Errorf("body under 1 MiB: status %d, want 400 (decoded, not 413)", rec.Code)
		}
		wantEvents(t, db, 0)
	})
}

func TestWebhookDatabaseGone(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := modelstest.NewDSN(t, d)
			check := modelstest.Open(t, d, dsn) // a second handle stays open to read back
			server, err := models.Open(context.Background(), d, dsn, models.Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := newHandler(t, server, secret1)
			models.Close(server)

			body := userEvent("user.created", "user_1", 1, "a@example.com")
			wantResponse(t, post(h, body, signed(t, secret1, "msg_1", time.Now(), body)), 503, `{"error":"database unavailable, retry later"}`)
			wantEvents(t, check, 0)

			req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			wantResponse(t, rec, 503, `{"error":"database unavailable"}`)
		})
	}
}

// Clerk's documented example payloads, signed and posted exactly as they are.
func TestWebhookClerkExamples(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		for _, tc := range []struct{ file, msgID, userID string }{
			{"clerk_user_created_example.json", "msg_created", "user_29w83sxmDNGwOuEthce5gg56FcC"},
			{"clerk_user_deleted_example.json", "msg_deleted", "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"},
		} {
			body, err := os.ReadFile(filepath.Join("..", "testdata", "clerk", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// Clerk's two documented examples name different instances: the
			// database mirrors each in turn (a new handler reads the binding).
			_, instance, err := clerkapi.DecodeEvent(tc.msgID, body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := models.RebindInstance(context.Background(), db, instance); err != nil {
				t.Fatal(err)
			}
			h := newHandler(t, db, secret1)
			wantResponse(t, post(h, body, signed(t, secret1, tc.msgID, time.Now(), body)), 200, `{"outcome":"applied"}`)
		}
		u, err := modelstest.FindUser(context.Background(), db, "user_29w83sxmDNGwOuEthce5gg56FcC")
		if err != nil {
			t.Fatal(err)
		}
		if u.Email == nil || *u.Email != "example@example.org" || !u.EmailVerified || u.Tier != "FREE" ||
			u.ClerkUpdatedAt != 1654012591835 || *u.FirstName != "Example" || u.Deleted() || u.RawJSON == nil {
			t.Errorf("created example row = %+v", u)
		}
		d, err := modelstest.FindUser(context.Background(), db, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
		if err != nil || !d.Deleted() {
			t.Errorf("deleted example: row %+v, err %v; want a tombstone", d, err)
		}
	})
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	h := newHandler(t, modelstest.New(t, models.SQLite), secret1)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`},
		{"GET", "/readyz", 200, `{"status":"ok"}`},
		{"GET", "/nope", 404, `{"error":"Not Found"}`},
		{"GET", "/api/webhooks/clerk", 405, `{"error":"Method Not Allowed"}`},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		wantResponse(t, rec, tc.status, tc.body)
	}
}

// Escapes Postgres refuses (\u0000, a lone surrogate) that a user can put in
// their own metadata or name do not make their events fail forever.
func TestWebhookStoresWhatPostgresRefuses(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		body := []byte(`{"type":"user.created","data":{"object":"user","id":"user_nul","updated_at":1,
			"first_name":"Ada\u0000","last_name":"\ud800x","unsafe_metadata":{"note":"a\u0000b","k\u0000":"\uDC00"},
			"public_metadata":{"tier":"pro"}}}`)
		wantResponse(t, post(h, body, signed(t, secret1, "msg_nul", time.Now(), body)), 200, `{"outcome":"applied"}`)
		u, err := modelstest.FindUser(context.Background(), db, "user_nul")
		if err != nil {
			t.Fatal(err)
		}
		if *u.FirstName != "Ada" || u.Tier != "PRO" || u.RawJSON == nil || strings.Contains(*u.RawJSON, `\u0000`) {
			t.Errorf("row = first %q tier %s raw %v", *u.FirstName, u.Tier, u.RawJSON)
		}
	})
}

// While serve verifies with its development secret, a refused signature
// says how to set the real one; with a configured secret it does not.
func TestWebhookRefusalHintsAtTheRealSecret(t *testing.T) {
	db := modelstest.New(t, models.SQLite)
	body := userEvent("user.created", "user_1", 100, "a@example.com")
	for _, dev := range []bool{true, false} {
		v, err := handlers.NewVerifier([]string{secret1})
		if err != nil {
			t.Fatal(err)
		}
		v.Development = dev
		h := handlers.New(handlers.Deps{DB: db, Webhooks: v})
		rec := post(h, body, signed(t, other, "msg_1", time.Now(), body))
		hinted := strings.Contains(rec.Body.String(), "set CLERK_WEBHOOK_SIGNING_SECRET")
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "no matching signature") || hinted != dev {
			t.Errorf("development secret %v: %d %s, want 400 naming the variable only with the development secret",
				dev, rec.Code, rec.Body)
		}
	}
}
