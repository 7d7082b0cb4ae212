package handlers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

const origin = "http://localhost:3000"

// syncEnv is a server wired to a fake Clerk, as serve wires the real one.
type syncEnv struct {
	h    http.Handler
	fake *clerktest.Fake
	db   *gorm.DB
}

type syncOpts struct {
	jwtKey    bool   // verify with CLERK_JWT_KEY instead of the JWKS
	issuer    string // CLERK_ISSUER
	freshness time.Duration
	fake      *clerktest.Fake // share another server's fake Clerk (nil: a new one)
}

func newSyncEnv(t *testing.T, db *gorm.DB, o syncOpts) syncEnv {
	t.Helper()
	fake := o.fake
	if fake == nil {
		fake = clerktest.New(t)
	}
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	cfg := clerkapi.SessionConfig{Client: client, Issuer: o.issuer, AuthorizedParties: []string{origin}}
	if o.jwtKey {
		cfg.JWTKey = fake.PublicKeyPEM()
	}
	sessions, err := clerkapi.NewSessionVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := handlers.NewVerifier([]string{secret1})
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Deps{
		DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhooks: v,
		Clerk: client, Sessions: sessions, SyncFreshness: o.freshness, CORSAllowedOrigins: []string{origin},
	})
	return syncEnv{h: h, fake: fake, db: db}
}

type syncCall struct {
	token  string
	cookie bool // send the token as the __session cookie
	body   string
}

func (e syncEnv) call(c syncCall) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/user/sync", strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	switch {
	case c.cookie:
		req.AddCookie(&http.Cookie{Name: "__session", Value: c.token})
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func claims(sub string, change func(map[string]any)) map[string]any {
	c := clerktest.Claims(sub)
	if change != nil {
		change(c)
	}
	return c
}

// rawToken builds a token by hand for algorithms no honest signer uses.
func rawToken(header, claims map[string]any, sign func(input string) string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return input + "." + sign(input)
}

type syncResponse struct {
	Success bool
	Outcome string
	User    struct {
		ID, Tier                             string
		Email, FirstName, LastName, ImageURL *string
		Username, PhoneNumber                *string
		CreatedAt, UpdatedAt                 time.Time
	}
}

func decodeSync(t *testing.T, rec *httptest.ResponseRecorder) syncResponse {
	t.Helper()
	var r syncResponse
	if rec.Code != 200 {
		t.Fatalf("status %d %s, want 200", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSyncRejectsBadSessions(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{issuer: clerktest.Issuer})
		env.fake.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		f := env.fake
		pubPEM := []byte(f.PublicKeyPEM())
		cases := []struct {
			name  string
			token string
		}{
			{"missing token", ""},
			{"garbage", "not.a.token"},
			{"expired", f.Token(claims("user_1", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }))},
			{"no exp", f.Token(claims("user_1", func(c map[string]any) { delete(c, "exp") }))},
			{"nbf in the future", f.Token(claims("user_1", func(c map[string]any) { c["nbf"] = time.Now().Add(time.Minute).Unix() }))},
			{"signed by another key", clerktest.Sign(clerktest.NewKey(), clerktest.KeyID, claims("user_1", nil))},
			{"alg none", rawToken(map[string]any{"alg": "none", "typ": "JWT", "kid": clerktest.KeyID}, claims("user_1", nil),
				func(string) string { return "" })},
			{"HS256 signed with the public key", rawToken(map[string]any{"alg": "HS256", "typ": "JWT", "kid": clerktest.KeyID}, claims("user_1", nil),
				func(in string) string {
					m := hmac.New(sha256.New, pubPEM)
					m.Write([]byte(in))
					return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
				})},
			{"wrong issuer", f.Token(claims("user_1", func(c map[string]any) { c["iss"] = "https://clerk.evil.example" }))},
			{"issuer with our issuer as prefix", f.Token(claims("user_1", func(c map[string]any) { c["iss"] = clerktest.Issuer + ".evil" }))},
			{"azp not authorized", f.Token(claims("user_1", func(c map[string]any) { c["azp"] = "https://evil.example" }))},
			{"azp missing", f.Token(claims("user_1", func(c map[string]any) { delete(c, "azp") }))},
			{"no sub", f.Token(claims("", nil))},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantResponse(t, env.call(syncCall{token: tc.token}), 401, `{"error":"invalid or missing session token"}`)
			})
		}
		if n := f.Hits(clerktest.OpGetUser); n != 0 {
			t.Errorf("Clerk user API called %d times for rejected sessions", n)
		}
		if rows := tableCount(t, db); rows != 0 {
			t.Errorf("users rows = %d after rejected sessions", rows)
		}
	})
}

func tableCount(t *testing.T, db *gorm.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Model(&models.User{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSyncBearerAndCookie(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{issuer: clerktest.Issuer})
		env.fake.PutUser(clerktest.User("user_1", 100, "Ada@Example.com", map[string]any{"username": "ada"}))
		env.fake.PutUser(clerktest.User("user_2", 100, "grace@example.com", nil))

		got := decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_1")), body: `{"userId":"user_1"}`}))
		if !got.Success || got.Outcome != "created" || got.User.ID != "user_1" || *got.User.Email != "ada@example.com" ||
			*got.User.Username != "ada" || got.User.Tier != "FREE" || got.User.PhoneNumber != nil || got.User.CreatedAt.IsZero() {
			t.Errorf("bearer response = %+v", got)
		}
		got = decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_2")), cookie: true}))
		if got.Outcome != "created" || got.User.ID != "user_2" {
			t.Errorf("cookie response = %+v", got)
		}
		u, err := modelstest.FindUser(context.Background(), db, "user_1")
		if err != nil || u.SyncSource != models.SourceLogin || u.RawJSON == nil {
			t.Errorf("row = %+v, %v", u, err)
		}
	})
}

func TestSyncUsesOnlyClerkData(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{})
		env.fake.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		tok := env.fake.Token(clerktest.Claims("user_1"))

		wantResponse(t, env.call(syncCall{token: tok, body: `{"userId":"user_2","email":"ada@example.com"}`}),
			403, `{"error":"Forbidden: User ID mismatch"}`)
		wantResponse(t, env.call(syncCall{token: tok, body: `{"userId":`}), 400, `{"error":"request body is not a JSON object"}`)

		// The seed's body, with a spoofed email and name: only Clerk's data lands.
		spoof := `{"userId":"user_1","email":"boss@company.example","firstName":"Mallory","lastName":"X","imageUrl":"https://evil"}`
		got := decodeSync(t, env.call(syncCall{token: tok, body: spoof}))
		if *got.User.Email != "ada@example.com" || *got.User.FirstName != "Ada" {
			t.Errorf("response user = %+v", got.User)
		}
		u, _ := modelstest.FindUser(context.Background(), db, "user_1")
		if *u.Email != "ada@example.com" || *u.FirstName != "Ada" || *u.ImageURL != "https://img.clerk.com/user_1" {
			t.Errorf("row = email %s name %s image %s", *u.Email, *u.FirstName, *u.ImageURL)
		}
	})
}

func TestSyncFreshnessAndOutcomes(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{freshness: time.Minute})
		env.fake.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		tok := env.fake.Token(clerktest.Claims("user_1"))

		if got := decodeSync(t, env.call(syncCall{token: tok})); got.Outcome != "created" {
			t.Fatalf("first = %s", got.Outcome)
		}
		for range 3 {
			if got := decodeSync(t, env.call(syncCall{token: tok})); got.Outcome != "fresh" || *got.User.Email != "ada@example.com" {
				t.Fatalf("within window = %+v", got)
			}
		}
		if n := env.fake.Hits(clerktest.OpGetUser); n != 1 {
			t.Errorf("Clerk user API hits = %d, want 1 (fresh answers come from the table)", n)
		}
	})
}

func TestSyncWithoutFreshness(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{})
		env.fake.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		tok := env.fake.Token(clerktest.Claims("user_1"))
		decodeSync(t, env.call(syncCall{token: tok}))

		// The application makes the user PRO; Clerk changes the name later.
		if err := db.Model(&models.User{}).Where("id = ?", "user_1").Update("tier", "PRO").Error; err != nil {
			t.Fatal(err)
		}
		before, _ := modelstest.FindUser(context.Background(), db, "user_1")
		if got := decodeSync(t, env.call(syncCall{token: tok})); got.Outcome != "unchanged" || got.User.Tier != "PRO" {
			t.Errorf("unchanged = %+v", got)
		}
		after, _ := modelstest.FindUser(context.Background(), db, "user_1")
		if !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("unchanged sync moved updated_at from %v to %v", before.UpdatedAt, after.UpdatedAt)
		}
		env.fake.PutUser(clerktest.User("user_1", 200, "ada@example.com", map[string]any{"first_name": "Augusta"}))
		got := decodeSync(t, env.call(syncCall{token: tok}))
		if got.Outcome != "updated" || got.User.Tier != "PRO" || *got.User.FirstName != "Augusta" {
			t.Errorf("updated = %+v", got)
		}
		if n := env.fake.Hits(clerktest.OpGetUser); n != 3 {
			t.Errorf("Clerk hits = %d, want 3 with freshness off", n)
		}
	})
}

// After a fetch that found the user unchanged, the next login inside the
// window is fresh, and confirming cost no row write.
func TestSyncUnchangedConfirmsWithoutWrite(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{freshness: time.Minute})
		user := clerktest.User("user_1", 100, "ada@example.com", nil)
		env.fake.PutUser(user)
		s, err := clerkapi.SnapshotFromJSON(mustJSON(t, user))
		if err != nil {
			t.Fatal(err)
		}
		// A webhook applied this snapshot long ago: the row is not fresh.
		if _, err := models.ApplySnapshot(context.Background(), db, s, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		db.Model(&models.User{}).Where("id = ?", "user_1").Updates(map[string]any{"synced_at": old, "updated_at": old})
		before, _ := modelstest.FindUser(context.Background(), db, "user_1")

		tok := env.fake.Token(clerktest.Claims("user_1"))
		for i, want := range []string{"unchanged", "fresh", "fresh"} {
			if got := decodeSync(t, env.call(syncCall{token: tok})); got.Outcome != want {
				t.Fatalf("call %d outcome = %s, want %s", i, got.Outcome, want)
			}
		}
		after, _ := modelstest.FindUser(context.Background(), db, "user_1")
		if !after.UpdatedAt.Equal(before.UpdatedAt) || after.SyncSource != models.SourceWebhook {
			t.Errorf("row written: updated_at %v -> %v, source %s", before.UpdatedAt, after.UpdatedAt, after.SyncSource)
		}
		if n := env.fake.Hits(clerktest.OpGetUser); n != 1 {
			t.Errorf("Clerk hits = %d, want 1", n)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSyncDeletedAndClerkFailures(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{})
		gone := `{"error":"user was deleted in Clerk"}`

		// Clerk answers 404: 410, and nothing is written.
		wantResponse(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_404"))}), 410, gone)

		// A tombstone answers 410 without asking Clerk.
		if _, err := models.Tombstone(context.Background(), db, "user_dead", models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		env.fake.PutUser(clerktest.User("user_dead", 500, "dead@example.com", nil))
		hits := env.fake.Hits(clerktest.OpGetUser)
		wantResponse(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_dead"))}), 410, gone)
		if env.fake.Hits(clerktest.OpGetUser) != hits {
			t.Error("tombstoned user caused a Clerk call")
		}

		env.fake.PutUser(clerktest.User("user_1", 100, "ada@example.com", nil))
		tok := env.fake.Token(clerktest.Claims("user_1"))
		unavailable := `{"error":"Clerk Backend API unavailable, retry later"}`
		for _, status := range []int{500, 503, 429} {
			env.fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: status, RetryAfter: "1"})
			wantResponse(t, env.call(syncCall{token: tok}), 502, unavailable)
		}
		if n := tableCount(t, db); n != 1 {
			t.Errorf("users rows = %d, want only the tombstone", n)
		}
	})
}

func TestSyncClerkUnreachable(t *testing.T) {
	db := modelstest.New(t, models.SQLite)
	env := newSyncEnv(t, db, syncOpts{jwtKey: true})
	tok := env.fake.Token(clerktest.Claims("user_1"))
	// A Clerk that does not answer at all: the client's timeout turns into 502.
	dead := clerkapi.NewClient("http://127.0.0.1:1", clerktest.SecretKey, nil)
	sessions, _ := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{JWTKey: env.fake.PublicKeyPEM()})
	h := handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.DiscardHandler), Clerk: dead, Sessions: sessions})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/api/user/sync", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	h.ServeHTTP(rec, req)
	wantResponse(t, rec, 502, `{"error":"Clerk Backend API unavailable, retry later"}`)
}

func TestSyncJWKSCaching(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{})
	for i := range 20 {
		id := "user_" + string(rune('a'+i))
		env.fake.PutUser(clerktest.User(id, 100, "", nil))
		decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims(id))}))
	}
	if n := env.fake.Hits(clerktest.OpJWKS); n != 1 {
		t.Errorf("JWKS fetches = %d for 20 requests, want 1", n)
	}
	// A flood of tokens with unknown kids refetches at most once per interval.
	for range 50 {
		tok := clerktest.Sign(env.fake.Key, "kid_unknown", clerktest.Claims("user_a"))
		wantResponse(t, env.call(syncCall{token: tok}), 401, `{"error":"invalid or missing session token"}`)
	}
	if n := env.fake.Hits(clerktest.OpJWKS); n > 2 {
		t.Errorf("JWKS fetches = %d after unknown kids, want at most 2", n)
	}
}

func TestSyncNetworklessKey(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{jwtKey: true})
	env.fake.PutUser(clerktest.User("user_1", 100, "", nil))
	decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_1"))}))
	if n := env.fake.Hits(clerktest.OpJWKS); n != 0 {
		t.Errorf("JWKS fetches = %d with CLERK_JWT_KEY set, want 0", n)
	}
}

func TestSyncJWKSUnavailable(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{})
	env.fake.FailNext(clerktest.OpJWKS, clerktest.Failure{Status: 500})
	wantResponse(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_1"))}), 502, `{"error":"could not fetch Clerk's signing keys"}`)
}

func TestSyncRateLimit(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{freshness: time.Minute})
	env.fake.PutUser(clerktest.User("user_1", 100, "", nil))
	env.fake.PutUser(clerktest.User("user_2", 100, "", nil))
	tok := env.fake.Token(clerktest.Claims("user_1"))
	for i := range 5 {
		if rec := env.call(syncCall{token: tok}); rec.Code != 200 {
			t.Fatalf("call %d: %d", i, rec.Code)
		}
	}
	rec := env.call(syncCall{token: tok})
	wantResponse(t, rec, 429, `{"error":"too many sync requests for this user, retry later"}`)
	if got := rec.Header().Get("Retry-After"); got != "12" {
		t.Errorf("Retry-After = %q, want 12", got)
	}
	// Another user is not affected.
	decodeSync(t, env.call(syncCall{token: env.fake.Token(clerktest.Claims("user_2"))}))
}

func TestSyncCORS(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{})
	preflight := func(from string) http.Header {
		req := httptest.NewRequest(http.MethodOptions, "/api/user/sync", nil)
		req.Header.Set("Origin", from)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		rec := httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("preflight from %s: status %d", from, rec.Code)
		}
		return rec.Header()
	}
	h := preflight(origin)
	if h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("allowed origin preflight headers = %v", h)
	}
	if h := preflight("https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin got Access-Control-Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	}
	// The webhook is not for browsers: no CORS headers there.
	req := httptest.NewRequest(http.MethodPost, "/api/webhooks/clerk", nil)
	req.Header.Set("Origin", origin)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Error("webhook answered with CORS headers")
	}
}

func TestSyncNotConfigured(t *testing.T) {
	h := newHandler(t, modelstest.New(t, models.SQLite), secret1)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/user/sync", nil))
	wantResponse(t, rec, 503, `{"error":"login-time sync is not configured (CLERK_SECRET_KEY)"}`)
}
