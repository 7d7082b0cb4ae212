package handlers_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// lockedBuffer lets the server's goroutines write the log while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// observed is a fully wired server whose log and metrics a test can read.
type observed struct {
	h    http.Handler
	fake *clerktest.Fake
	log  *lockedBuffer
}

func newObserved(t *testing.T) observed {
	t.Helper()
	db := modelstest.New(t, models.SQLite)
	fake := clerktest.New(t)
	m := metrics.New("test")
	httpClient := &http.Client{Timeout: time.Second, Transport: m.ClerkTransport(http.DefaultTransport, clerkapi.Operation)}
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, httpClient)
	sessions, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{Client: client, AuthorizedParties: []string{origin}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := handlers.NewVerifier([]string{secret1})
	log := &lockedBuffer{}
	h := handlers.New(handlers.Deps{
		DB: db, Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Webhooks: v, Clerk: client, Sessions: sessions, Metrics: m, SyncFreshness: time.Minute,
	})
	return observed{h: h, fake: fake, log: log}
}

func (o observed) get(t *testing.T, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	o.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Body.String()
}

// metricValue reads one sample from the Prometheus text output.
func metricValue(t *testing.T, text, series string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && name == series {
			return value
		}
	}
	return "absent"
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	o := newObserved(t)
	env := syncEnv{h: o.h, fake: o.fake}
	if got := metricValue(t, o.get(t, "/metrics"), "usersync_webhook_last_applied_timestamp_seconds"); got != "0" {
		t.Errorf("last applied webhook before any = %s, want 0", got)
	}
	body := userEvent("user.created", "user_1", 1, "ada@example.com")
	before := time.Now()
	post(o.h, body, signed(t, secret1, "msg_1", time.Now(), body))
	post(o.h, body, signed(t, secret1, "msg_1", time.Now(), body))
	post(o.h, body, http.Header{})
	o.fake.PutUser(clerktest.User("user_2", 5, "grace@example.com", nil))
	env.call(syncCall{token: o.fake.Token(clerktest.Claims("user_2"))})
	env.call(syncCall{token: o.fake.Token(clerktest.Claims("user_2"))})
	env.call(syncCall{token: "nope"})

	text := o.get(t, "/metrics")
	for series, want := range map[string]string{
		`usersync_webhook_events_total{outcome="applied",type="user.created"}`:                                 "1",
		`usersync_webhook_events_total{outcome="duplicate",type="user.created"}`:                               "1",
		`usersync_webhook_events_total{outcome="invalid_signature",type="unknown"}`:                            "1",
		`usersync_login_syncs_total{outcome="created"}`:                                                        "1",
		`usersync_login_syncs_total{outcome="fresh"}`:                                                          "1",
		`usersync_login_syncs_total{outcome="unauthorized"}`:                                                   "1",
		`usersync_upserts_total{outcome="created",source="webhook"}`:                                           "1",
		`usersync_upserts_total{outcome="created",source="login"}`:                                             "1",
		`usersync_clerk_api_requests_total{operation="get_user",status="2xx"}`:                                 "1",
		`usersync_clerk_api_requests_total{operation="get_jwks",status="2xx"}`:                                 "1",
		`usersync_http_request_duration_seconds_count{method="POST",route="/api/webhooks/clerk",status="200"}`: "2",
		`usersync_http_request_duration_seconds_count{method="POST",route="/api/user/sync",status="401"}`:      "1",
	} {
		if got := metricValue(t, text, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	last, err := strconv.ParseFloat(metricValue(t, text, "usersync_webhook_last_applied_timestamp_seconds"), 64)
	if at := time.Unix(0, int64(last*1e9)); err != nil || at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("last applied webhook = %v (%v), want the time of msg_1's delivery", last, err)
	}
	for _, present := range []string{"usersync_build_info{", "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(text, present) {
			t.Errorf("/metrics lacks %s", present)
		}
	}
}

// A realistic sequence of webhooks and login syncs, good and bad: the log
// names ids and outcomes and never an email, a name, a phone number, a
// token or a secret.
func TestLogsHoldNoPersonalData(t *testing.T) {
	o := newObserved(t)
	env := syncEnv{h: o.h, fake: o.fake}
	var secrets []string
	for i := range 5 {
		id := fmt.Sprintf("user_%d", i)
		body := userEvent("user.created", id, int64(10+i), fmt.Sprintf("Person%d@Example.com", i))
		post(o.h, body, signed(t, secret1, "msg_c"+id, time.Now(), body))
		post(o.h, body, signed(t, secret1, "msg_c"+id, time.Now(), body))
		body = userEvent("user.updated", id, int64(5), fmt.Sprintf("old%d@example.com", i))
		post(o.h, body, signed(t, secret1, "msg_u"+id, time.Now(), body))
	}
	tampered := userEvent("user.created", "user_x", 1, "victim@example.com")
	post(o.h, tampered, signed(t, other, "msg_bad", time.Now(), tampered))
	o.fake.PutUser(clerktest.User("user_9", 5, "grace.hopper@example.com", map[string]any{
		"first_name": "Grace", "last_name": "Hopper", "username": "amazing_grace",
		"phone_numbers": []any{map[string]any{"id": "idn_ph", "phone_number": "+15550001234"}}, "primary_phone_number_id": "idn_ph",
	}))
	good := o.fake.Token(clerktest.Claims("user_9"))
	expired := o.fake.Token(claims("user_9", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))
	secrets = append(secrets, good, expired, clerktest.SecretKey, secret1, other)
	env.call(syncCall{token: good, body: `{"userId":"user_9","email":"spoof@evil.example","firstName":"Mallory"}`})
	env.call(syncCall{token: good, cookie: true})
	env.call(syncCall{token: expired})
	env.call(syncCall{token: good, body: `{"userId":"user_1"}`})
	o.fake.FailNext(clerktest.OpGetUser, clerktest.Failure{Status: 500})
	env.call(syncCall{token: o.fake.Token(clerktest.Claims("user_4"))})

	log := o.log.String()
	if !strings.Contains(log, `"user_id":"user_9"`) || !strings.Contains(log, `"svix_id":"msg_cuser_0"`) {
		t.Fatalf("log lacks the ids it should name:\n%s", log)
	}
	// A rejected delivery's line says what stopped it, so a wrong signing
	// secret is found in the log without logging the body.
	if !regexp.MustCompile(`"status":400,[^\n]*"outcome":"invalid_signature"`).MatchString(log) {
		t.Errorf("log does not say why the tampered delivery was refused:\n%s", log)
	}
	forbidden := append(secrets, "Person", "person0", "example.com", "evil.example", "Ada", "Grace", "Hopper",
		"amazing_grace", "Mallory", "+1555", "whsec_", "sk_test")
	for _, s := range forbidden {
		if strings.Contains(log, s) {
			t.Errorf("log contains %q", s)
		}
	}
	if m := regexp.MustCompile(`[\w.+-]+@[\w-]+\.[\w.]+`).FindString(log); m != "" {
		t.Errorf("log contains an email address: %q", m)
	}
}

func TestRequestIDHonouredAndSanitised(t *testing.T) {
	o := newObserved(t)
	for _, tc := range []struct{ in, want string }{
		{"req-123_abc.DEF", "req-123_abc.DEF"},
		{"bad id with spaces", ""},
		{strings.Repeat("a", 200), ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header.Set("X-Request-Id", tc.in)
		rec := httptest.NewRecorder()
		o.h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if tc.want != "" && got != tc.want || tc.want == "" && (got == tc.in || got == "") {
			t.Errorf("X-Request-Id %q answered %q", tc.in, got)
		}
	}
	if !strings.Contains(o.log.String(), `"request_id":"req-123_abc.DEF"`) {
		t.Error("log does not carry the incoming request id")
	}
}
