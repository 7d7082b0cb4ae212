package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// standardHeaders signs body as svix does but under the Standard Webhooks
// names, which the svix library verifies when the svix-* set is incomplete.
func standardHeaders(t *testing.T, msgID string, body []byte) http.Header {
	s := signed(t, secret1, msgID, time.Now(), body)
	h := http.Header{}
	h.Set("webhook-id", s.Get("svix-id"))
	h.Set("webhook-timestamp", s.Get("svix-timestamp"))
	h.Set("webhook-signature", s.Get("svix-signature"))
	return h
}

func eventIDs(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Model(&models.WebhookEvent{}).Order("svix_id").Pluck("svix_id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

// Item 1: the id recorded and de-duplicated is the one the signature
// covered. A delivery signed under webhook-* with an unsigned svix-id
// beside it is recorded under the signed id, and replaying it with other
// svix-ids is a duplicate, never a fresh event or a claim on another id.
func TestWebhookRecordsTheSignedID(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		body := userEvent("user.created", "user_1", 100, "a@example.com")
		for i, forged := range []string{"", "msg_future", "msg_other"} {
			hd := standardHeaders(t, "msg_signed", body)
			if forged != "" {
				hd.Set("svix-id", forged)
			}
			want := `{"outcome":"duplicate"}`
			if i == 0 {
				want = `{"outcome":"applied"}`
			}
			wantResponse(t, post(h, body, hd), 200, want)
		}
		if ids := eventIDs(t, db); len(ids) != 1 || ids[0] != "msg_signed" {
			t.Fatalf("webhook_events ids = %q, want only msg_signed", ids)
		}
		// The real delivery of the id an attacker tried to pre-claim applies.
		next := userEvent("user.updated", "user_1", 200, "b@example.com")
		wantResponse(t, post(h, next, signed(t, secret1, "msg_future", time.Now(), next)), 200, `{"outcome":"applied"}`)
		u, err := modelstest.FindUser(context.Background(), db, "user_1")
		if err != nil || u.ClerkUpdatedAt != 200 {
			t.Fatalf("user_1 = %+v, %v; want the msg_future update applied", u, err)
		}
	})
}

// Item 1: a signed id longer than 255 bytes or not visible ASCII is
// refused with 400 on both databases (Postgres answered 503 before).
func TestWebhookRefusesBadMessageIDs(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		body := userEvent("user.created", "user_1", 100, "a@example.com")
		for _, id := range []string{strings.Repeat("m", 256), strings.Repeat("m", 4096), "msg_\xff\xfe", "msg é", "msg 1", "msg_\x01"} {
			for _, family := range []string{"svix", "webhook"} {
				hd := signed(t, secret1, id, time.Now(), body)
				if family == "webhook" {
					hd = standardHeaders(t, id, body)
				}
				wantResponse(t, post(h, body, hd), 400, `{"error":"invalid webhook message id"}`)
			}
		}
		id := strings.Repeat("m", 255)
		wantResponse(t, post(h, body, signed(t, secret1, id, time.Now(), body)), 200, `{"outcome":"applied"}`)
		if ids := eventIDs(t, db); len(ids) != 1 || ids[0] != id {
			t.Fatalf("webhook_events ids = %q", ids)
		}
	})
}

// Items 9 and 10: a signed event Postgres could never store gets a clear
// 400 once instead of 503 and retries for days, and a signed body the
// decoder refuses is answered with a short message while the decoder's
// text goes to the log at info.
func TestWebhookRefusesUnstorableInput(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		log := &lockedBuffer{}
		v, _ := handlers.NewVerifier([]string{secret1})
		h := handlers.New(handlers.Deps{DB: db, Webhooks: v, Log: slog.New(slog.NewJSONHandler(log, nil))})
		for i, tc := range []struct{ body, want string }{
			{`{"type":"user.created","data":{"id":"user_\u0000","updated_at":1}}`, "not a Clerk event: control character in type or data.id"},
			{`{"type":"user.created\u0000","data":{"id":"user_1","updated_at":1}}`, "not a Clerk event: control character in type or data.id"},
			{`{"type":"user.deleted","data":{"id":"user_1\u0000"}}`, "not a Clerk event: control character in type or data.id"},
			{"{\"type\":\"user.created\",\"data\":{\"id\":\"user_1\",\"updated_at\":1,\"first_name\":\"A\xff\xfe\"}}", "not a Clerk event: body is not valid UTF-8"},
			{"{\"type\":\"session.created\",\"data\":{\"id\":\"sess_\xc3\"}}", "not a Clerk event: body is not valid UTF-8"},
			{`{"type":"user.created","data":{"id":"user_1","updated_at":"soon"}}`, "invalid Clerk user object"},
		} {
			body := []byte(tc.body)
			rec := post(h, body, signed(t, secret1, fmt.Sprintf("msg_%d", i), time.Now(), body))
			want, _ := json.Marshal(map[string]string{"error": tc.want})
			wantResponse(t, rec, 400, string(want))
		}
		wantEvents(t, db, 0)
		if n := tableCount(t, db); n != 0 {
			t.Errorf("users rows = %d, want 0", n)
		}
		if !strings.Contains(log.String(), `"level":"INFO","msg":"request refused"`) ||
			!strings.Contains(log.String(), "unmarshal") || !strings.Contains(log.String(), "updated_at") {
			t.Errorf("log lacks the refused cause:\n%s", log)
		}
	})
}

// Item 8: a token whose alg is 50 KB is refused with 401, and the log line
// about it carries at most 128 bytes of it.
func TestLogsClipAttackerValues(t *testing.T) {
	o := newObserved(t)
	env := syncEnv{h: o.h, fake: o.fake}
	huge := strings.Repeat("A", 50<<10)
	tok := rawToken(map[string]any{"alg": huge, "kid": clerktest.KeyID}, clerktest.Claims("user_1"), func(string) string { return "c2ln" })
	wantResponse(t, env.call(syncCall{token: tok}), 401, `{"error":"invalid or missing session token"}`)
	req := httptest.NewRequest(strings.Repeat("M", 5000), "/api/user/sync", nil)
	o.h.ServeHTTP(httptest.NewRecorder(), req)
	log := o.log.String()
	if strings.Contains(log, strings.Repeat("A", 129)) || strings.Contains(log, strings.Repeat("M", 129)) || len(log) > 4096 {
		t.Errorf("log carries more than 128 bytes of an attacker's value (%d bytes of log)", len(log))
	}
	if !strings.Contains(log, `"msg":"session rejected"`) {
		t.Errorf("log lacks the rejection:\n%.2000s", log)
	}
}

// Item 2: forty tokens with unknown kids while the JWKS answers 500, half
// of their clients hanging up, cost at most three JWKS calls; the clients
// that wait get 502, and none of them is logged as an error but the one
// that saw the fetch fail.
func TestJWKSFailuresAreThrottled(t *testing.T) {
	log := &lockedBuffer{}
	fake := clerktest.New(t)
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	sessions, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	h := handlers.New(handlers.Deps{DB: modelstest.New(t, models.SQLite), Clerk: client, Sessions: sessions,
		Log: slog.New(slog.NewJSONHandler(log, nil))})
	fails := make([]clerktest.Failure, 40)
	for i := range fails {
		fails[i] = clerktest.Failure{Status: 500, Delay: 100 * time.Millisecond}
	}
	fake.FailNext(clerktest.OpJWKS, fails...)
	var wg sync.WaitGroup
	codes := make([]int, 40)
	for i := range 40 {
		wg.Go(func() {
			tok := clerktest.Sign(fake.Key, fmt.Sprintf("kid_made_up_%d", i), clerktest.Claims("user_1"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if i%2 == 1 {
				time.AfterFunc(time.Duration(i)*time.Millisecond, cancel) // this client hangs up
			}
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // spread over the fetch and after it
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/user/sync", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		})
	}
	wg.Wait()
	t.Logf("JWKS calls for 40 unknown kids while the JWKS answers 500: %d", fake.Hits(clerktest.OpJWKS))
	if n := fake.Hits(clerktest.OpJWKS); n > 3 || n < 1 {
		t.Errorf("JWKS calls = %d for 40 unknown kids, want 1 to 3", n)
	}
	for i := 0; i < 40; i += 2 {
		if codes[i] != http.StatusBadGateway {
			t.Errorf("client %d (stayed): status %d, want 502", i, codes[i])
		}
	}
	if n := strings.Count(log.String(), `"level":"ERROR"`); n > 3 {
		t.Errorf("%d ERROR lines for one failing fetch:\n%s", n, errorLines(log.String()))
	}
}

// Item 6: a cookie-authenticated simple POST from a foreign Origin is
// answered 403 before any token check, Clerk call or write; the same
// request from an allowed origin (or the service's own) syncs.
func TestCookieSessionFromForeignOrigin(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		env := newSyncEnv(t, db, syncOpts{})
		env.fake.PutUser(clerktest.User("user_1", 100, "a@example.com", nil))
		tok := env.fake.Token(clerktest.Claims("user_1"))
		send := func(from string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "http://sync.example.com/api/user/sync", strings.NewReader(`{"userId":"user_1"}`))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("Origin", from)
			req.AddCookie(&http.Cookie{Name: "__session", Value: tok})
			rec := httptest.NewRecorder()
			env.h.ServeHTTP(rec, req)
			return rec
		}
		for _, from := range []string{"https://evil.example", "null", "http://localhost:3001", "http://localhost:3000.evil.example"} {
			wantResponse(t, send(from), 403, `{"error":"Forbidden: origin not allowed"}`)
		}
		if j, u, n := env.fake.Hits(clerktest.OpJWKS), env.fake.Hits(clerktest.OpGetUser), tableCount(t, db); j+u != 0 || n != 0 {
			t.Fatalf("after foreign posts: JWKS calls %d, user fetches %d, users rows %d; want none", j, u, n)
		}
		rec := send(origin)
		if decodeSync(t, rec).Outcome != "created" || rec.Header().Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("allowed origin: %d %s %v", rec.Code, rec.Body, rec.Header())
		}
		if rec := send("http://sync.example.com"); rec.Code != 200 {
			t.Fatalf("same origin: %d %s", rec.Code, rec.Body)
		}
	})
}

// Item 4: answers to an allowed origin let the page read Retry-After and
// X-Request-Id.
func TestCORSExposesRetryAfter(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{})
	req := httptest.NewRequest(http.MethodPost, "/api/user/sync", nil)
	req.Header.Set("Origin", origin)
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	exposed := strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers"))
	if rec.Code != 401 || !strings.Contains(exposed, "retry-after") || !strings.Contains(exposed, "x-request-id") {
		t.Fatalf("status %d, Access-Control-Expose-Headers %q; want Retry-After and X-Request-Id", rec.Code, exposed)
	}
}

func errorLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Item 5, in depth: even if a pattern reached the handler, origins are
// compared exactly, so https://*.vercel.app does not admit another site.
func TestCORSOriginsAreExact(t *testing.T) {
	db := modelstest.New(t, models.SQLite)
	h := handlers.New(handlers.Deps{DB: db, CORSAllowedOrigins: []string{"https://*.vercel.app", "http://localhost:*", origin}})
	for from, want := range map[string]string{"https://attacker.vercel.app": "", "http://localhost:3001": "", origin: origin} {
		req := httptest.NewRequest(http.MethodOptions, "/api/user/sync", nil)
		req.Header.Set("Origin", from)
		req.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", from, got, want)
		}
	}
}

// In process: with the budget (8 MiB here, 64 in serve) held by 8 bodies
// of 1 MiB that arrived but for their last byte, more deliveries wait
// briefly and then get 503 with Retry-After, and the stalled ones are cut
// off by the body read deadline with 408.
func TestWebhookBodyBudget(t *testing.T) {
	const stalled, extra = 8, 6
	v, _ := handlers.NewVerifier([]string{secret1})
	srv := httptest.NewServer(handlers.New(handlers.Deps{DB: modelstest.New(t, models.SQLite), Webhooks: v, BodyBudget: stalled << 20}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	statuses := make(chan string, stalled+extra)
	full := strings.Repeat("x", 1<<20-1)
	var wg, written sync.WaitGroup
	written.Add(stalled)
	for i := range stalled + extra {
		if i == stalled {
			// The first ones hold the budget once their bytes are in.
			written.Wait()
			time.Sleep(300 * time.Millisecond)
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				statuses <- err.Error()
				return
			}
			defer c.Close()
			head := fmt.Sprintf("POST /api/webhooks/clerk HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, 1<<20)
			if i < stalled {
				go func() { c.Write([]byte(head + full)); written.Done() }()
			} else {
				c.Write([]byte(head + "{")) // waits for budget from its first bytes
			}
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				statuses <- err.Error()
				return
			}
			statuses <- fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Retry-After"))
		})
	}
	wg.Wait()
	close(statuses)
	got := map[string]int{}
	for s := range statuses {
		got[s]++
	}
	if got["408 "] != stalled || got["503 1"] != extra {
		t.Errorf("answers = %v, want %d × 408 and %d × 503 with Retry-After: 1", got, stalled, extra)
	}
}

// The budget is spent on bytes that arrived: 512 connections that announce
// 1 MiB and send only their headers hold 4 KiB each, so a signed webhook
// and a login sync with a body are answered normally meanwhile (before,
// each reserved the 1 MiB it announced and both waited 2 s for a 503).
func TestHeaderOnlyFloodLocksNobodyOut(t *testing.T) {
	env := newSyncEnv(t, modelstest.New(t, models.SQLite), syncOpts{jwtKey: true})
	env.fake.PutUser(clerktest.User("user_1", 100, "a@example.com", nil))
	srv := httptest.NewServer(env.h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	const flood = 512
	for i := range flood {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /api/webhooks/clerk HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, 1<<20)
	}
	time.Sleep(300 * time.Millisecond) // every flood request is reading its body

	body := userEvent("user.created", "user_2", 100, "b@example.com")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/webhooks/clerk", bytes.NewReader(body))
	req.Header = signed(t, secret1, "msg_during_flood", time.Now(), body)
	wantHTTP(t, req, 200, `{"outcome":"applied"}`)

	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/api/user/sync", strings.NewReader(`{"userId":"user_1"}`))
	req.Header.Set("Authorization", "Bearer "+env.fake.Token(clerktest.Claims("user_1")))
	wantHTTP(t, req, 200, "")
}

// wantHTTP sends req to a real server within 1.5 s (under bodyWait, the
// wait for budget) and checks the status, and the body unless want is "".
func wantHTTP(t *testing.T, req *http.Request, status int, want string) {
	t.Helper()
	start := time.Now()
	resp, err := (&http.Client{Timeout: 1500 * time.Millisecond}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || (want != "" && strings.TrimSpace(string(got)) != want) {
		t.Errorf("%s after %s = %d %s, want %d %s", req.URL.Path, time.Since(start).Round(time.Millisecond), resp.StatusCode, got, status, want)
	}
}

// Every value the database cannot store, in users, organizations and
// memberships, is answered 400 with a short message at decode time (it was
// 503, and Svix retried for days), and the rows stay as they were, on both
// databases.
func TestWebhookRefusesUnstorableValues(t *testing.T) {
	long := strings.Repeat("a", 3000)
	member := func(id, org, user, role string) string {
		return fmt.Sprintf(`{"type":"organizationMembership.updated","data":{"object":"organization_membership","id":%q,
			"role":%q,"created_at":1,"updated_at":200,
			"organization":{"object":"organization","id":%q,"name":"Acme","updated_at":200},
			"public_user_data":{"user_id":%q}}}`, id, role, org, user)
	}
	org := func(id, extra string) string {
		return fmt.Sprintf(`{"type":"organization.updated","data":{"object":"organization","id":%q,"name":"Acme"%s,"updated_at":200}}`, id, extra)
	}
	cases := []struct{ name, body, want string }{
		{"user id over 255 bytes", string(userEvent("user.updated", "user_"+long, 200, "b@example.com")), "not a Clerk event: data.id is longer than 255 bytes"},
		{"email over 320 bytes", string(userEvent("user.updated", "user_1", 200, long+"@example.com")), "value cannot be stored: primary email address is longer than 320 bytes"},
		{"NUL in email", string(userEvent("user.updated", "user_1", 200, "b<NUL>@example.com")), "value cannot be stored: primary email address holds a control character"},
		{"organization id over 255 bytes", org("org_"+long, ""), "not a Clerk event: data.id is longer than 255 bytes"},
		{"members_count beyond int32", org("org_1", `,"members_count":3000000000`), "value cannot be stored: members_count is out of range"},
		{"members_count beyond int64", org("org_1", `,"members_count":30000000000000000000`), "invalid Clerk event"},
		{"NUL in public_user_data.user_id", member("mem_1", "org_1", "user_<NUL>1", "org:admin"), "value cannot be stored: public_user_data.user_id holds a control character"},
		{"user_id over 255 bytes", member("mem_1", "org_1", "user_"+long, "org:admin"), "value cannot be stored: public_user_data.user_id is longer than 255 bytes"},
		{"NUL in organization.id", member("mem_1", "org_<NUL>1", "user_1", "org:admin"), "value cannot be stored: id holds a control character"},
		{"organization.id over 255 bytes", member("mem_1", "org_"+long, "user_1", "org:admin"), "value cannot be stored: id is longer than 255 bytes"},
		{"NUL in role", member("mem_1", "org_1", "user_1", "org:<NUL>admin"), "value cannot be stored: role holds a control character"},
		{"role over 255 bytes", member("mem_1", "org_1", "user_1", long), "value cannot be stored: role is longer than 255 bytes"},
		{"NUL in a membership deletion", strings.Replace(member("mem_1", "org_1", "user_1", "org:<NUL>admin"), "membership.updated", "membership.deleted", 1), "value cannot be stored: role holds a control character"},
		{"timestamp beyond int64", strings.Replace(org("org_1", ""), `"updated_at":200`, `"updated_at":9223372036854775808`, 1), "invalid Clerk event"},
	}
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		seed := [][]byte{userEvent("user.created", "user_1", 100, "a@example.com"), orgEvent("organization.created", "org_1", 100),
			membershipEvent("organizationMembership.created", "mem_1", "org_1", "user_1", 100, 100)}
		for i, body := range seed {
			wantResponse(t, post(h, body, signed(t, secret1, fmt.Sprintf("msg_seed_%d", i), time.Now(), body)), 200, `{"outcome":"applied"}`)
		}
		before := rowStamps(t, db)
		for i, tc := range cases {
			body := []byte(strings.ReplaceAll(tc.body, "<NUL>", `\u0000`)) // %q cannot write a JSON NUL
			rec := post(h, body, signed(t, secret1, fmt.Sprintf("msg_bad_%d", i), time.Now(), body))
			want, _ := json.Marshal(map[string]string{"error": tc.want})
			if rec.Code != 400 || strings.TrimSpace(rec.Body.String()) != string(want) {
				t.Errorf("%s: %d %s, want 400 %s", tc.name, rec.Code, rec.Body, want)
			}
		}
		if after := rowStamps(t, db); !maps.Equal(after, before) {
			t.Errorf("rows changed: before %v, after %v", before, after)
		}
		wantEvents(t, db, int64(len(seed)))
	})
}

// A caller who hangs up is not a server or Clerk failure: a login sync cut
// short while Clerk answers slowly, or while the JWKS is fetched slowly, is
// recorded with status 499 and outcome client_gone, the Clerk call as
// canceled, and nothing is logged at ERROR (before: 502 clerk_unavailable
// logged at ERROR, a Clerk call counted as error, and 500 for the JWKS
// wait; together they fired UsersyncServerErrors and UsersyncClerkUnavailable).
func TestClientHangUpsAreNotFailures(t *testing.T) {
	for _, jwks := range []bool{false, true} {
		t.Run(fmt.Sprintf("jwks=%v", jwks), func(t *testing.T) {
			log := &lockedBuffer{}
			fake := clerktest.New(t)
			fake.PutUser(clerktest.User("user_1", 100, "a@example.com", nil))
			fake.SetLatency(300 * time.Millisecond)
			m := metrics.New("test")
			client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, &http.Client{Transport: m.ClerkTransport(http.DefaultTransport, clerkapi.Operation)})
			cfg := clerkapi.SessionConfig{Client: client}
			if !jwks {
				cfg.JWTKey = fake.PublicKeyPEM()
			}
			sessions, err := clerkapi.NewSessionVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := handlers.New(handlers.Deps{DB: modelstest.New(t, models.SQLite), Clerk: client, Sessions: sessions,
				Metrics: m, Log: slog.New(slog.NewJSONHandler(log, nil))})
			for range 5 {
				// curl -m 0.1 closes the connection: net/http cancels the context.
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/user/sync", strings.NewReader(`{"userId":"user_1"}`))
				req.Header.Set("Authorization", "Bearer "+fake.Token(clerktest.Claims("user_1")))
				h.ServeHTTP(httptest.NewRecorder(), req)
				cancel()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			op := "get_user"
			if jwks {
				op = "get_jwks"
			}
			for series, want := range map[string]string{
				`usersync_login_syncs_total{outcome="client_gone"}`:                                               "5",
				`usersync_login_syncs_total{outcome="clerk_unavailable"}`:                                         "absent",
				`usersync_http_request_duration_seconds_count{method="POST",route="/api/user/sync",status="499"}`: "5",
				`usersync_http_request_duration_seconds_count{method="POST",route="/api/user/sync",status="500"}`: "absent",
				`usersync_http_request_duration_seconds_count{method="POST",route="/api/user/sync",status="502"}`: "absent",
				fmt.Sprintf(`usersync_clerk_api_requests_total{operation=%q,status="error"}`, op):                 "absent",
			} {
				if got := metricValue(t, rec.Body.String(), series); got != want {
					t.Errorf("%s = %s, want %s", series, got, want)
				}
			}
			if strings.Contains(log.String(), `"level":"ERROR"`) {
				t.Errorf("hang-ups logged at ERROR:\n%s", errorLines(log.String()))
			}
		})
	}
}
