package handlers_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// budgetEnv is a server whose Clerk client spends from a budget of
// requests per per, as serve wires it.
type budgetEnv struct {
	syncEnv
	client *clerkapi.Client
	m      *metrics.Metrics
}

func newBudgetEnv(t *testing.T, requests int, per time.Duration, jwks bool) budgetEnv {
	t.Helper()
	db := modelstest.New(t, models.SQLite)
	fake := clerktest.New(t)
	m := metrics.New("test")
	budget := clerkapi.NewBudget(requests, per, m.ClerkThrottled.Inc)
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil, clerkapi.WithBudget(budget))
	cfg := clerkapi.SessionConfig{Client: client}
	if !jwks {
		cfg.JWTKey = fake.PublicKeyPEM()
	}
	sessions, err := clerkapi.NewSessionVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.DiscardHandler), Clerk: client, Sessions: sessions, Metrics: m})
	for _, id := range []string{"user_1", "user_2"} {
		fake.PutUser(clerktest.User(id, 100, "", nil))
	}
	return budgetEnv{syncEnv: syncEnv{h: h, fake: fake, db: db}, client: client, m: m}
}

func (e budgetEnv) metric(t *testing.T, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return metricValue(t, rec.Body.String(), series)
}

// wantThrottled checks the 503 of a login sync refused for budget: its
// Retry-After is whole seconds within [lo, hi], and it came at once.
func wantThrottled(t *testing.T, e budgetEnv, user string, lo, hi int) {
	t.Helper()
	start := time.Now()
	rec := e.call(syncCall{token: e.fake.Token(clerktest.Claims(user))})
	// A refusal does not wait: far under RequestTimeout (a generous bound).
	if elapsed := time.Since(start); elapsed > handlers.RequestTimeout/2 {
		t.Errorf("answered after %s, want at once", elapsed)
	}
	wantResponse(t, rec, 503, `{"error":"Clerk request budget exhausted, retry later"}`)
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || ra < lo || ra > hi {
		t.Errorf("Retry-After = %q, want whole seconds in [%d, %d]", rec.Header().Get("Retry-After"), lo, hi)
	}
}

// With the process's budget spent (CLERK_API_RATE 1/10s), a login sync is
// answered 503 with Retry-After at once, and Clerk is not called.
func TestSyncBudgetExhausted(t *testing.T) {
	e := newBudgetEnv(t, 1, 10*time.Second, false)
	if _, err := e.client.CountUsers(context.Background()); err != nil { // spends the only token
		t.Fatal(err)
	}
	wantThrottled(t, e, "user_1", 9, 10)
	if n := e.fake.Hits(clerktest.OpGetUser) + e.fake.Hits(clerktest.OpListUserMemberships); n != 0 {
		t.Errorf("Clerk calls = %d, want 0", n)
	}
	if n := tableCount(t, e.db); n != 0 {
		t.Errorf("users rows = %d, want 0", n)
	}
	for series, want := range map[string]string{
		`usersync_login_syncs_total{outcome="clerk_throttled"}`:   "1",
		`usersync_login_syncs_total{outcome="clerk_unavailable"}`: "absent",
		`usersync_clerk_api_throttled_total`:                      "1",
	} {
		if got := e.metric(t, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
}

// The JWKS fetch spends from the same budget: when it cannot, the sync is
// answered 503 too, not 401 or 502.
func TestSyncBudgetExhaustedBeforeJWKS(t *testing.T) {
	e := newBudgetEnv(t, 1, 10*time.Second, true)
	if _, err := e.client.CountUsers(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantThrottled(t, e, "user_1", 9, 10)
	if n := e.fake.Hits(clerktest.OpJWKS); n != 0 {
		t.Errorf("JWKS fetches = %d, want 0", n)
	}
}

// Clerk's 429 pauses the whole process: the sync that met it answers 502,
// and the next one is refused for the rest of the Retry-After without
// calling Clerk.
func TestSyncAfterClerk429(t *testing.T) {
	e := newBudgetEnv(t, 100, time.Second, false)
	e.fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "30"})
	rec := e.call(syncCall{token: e.fake.Token(clerktest.Claims("user_1"))})
	wantResponse(t, rec, 502, `{"error":"Clerk Backend API unavailable, retry later"}`)
	wantThrottled(t, e, "user_2", 29, 30)
	if n := e.fake.Hits(clerktest.OpGetUser); n != 1 {
		t.Errorf("get_user calls = %d, want 1", n)
	}
	for series, want := range map[string]string{
		`usersync_login_syncs_total{outcome="clerk_throttled"}`:   "1",
		`usersync_login_syncs_total{outcome="clerk_unavailable"}`: "1",
	} {
		if got := e.metric(t, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
}
