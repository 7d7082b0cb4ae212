package handlers_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// stream is a set of webhook deliveries and the table they must produce.
type stream struct {
	msgs []message
	want map[string]int64 // user id → newest clerk updated_at
}

type message struct {
	id   string
	body []byte
}

// newStream makes versions events for each of users users, shuffled.
func newStream(users, versions int) stream {
	s := stream{want: map[string]int64{}}
	for u := range users {
		id := fmt.Sprintf("user_%03d", u)
		for v := 1; v <= versions; v++ {
			body := userEvent("user.updated", id, int64(v), fmt.Sprintf("%s.v%d@example.com", id, v))
			s.msgs = append(s.msgs, message{id: fmt.Sprintf("msg_%s_%d", id, v), body: body})
		}
		s.want[id] = int64(versions)
	}
	rand.Shuffle(len(s.msgs), func(i, j int) { s.msgs[i], s.msgs[j] = s.msgs[j], s.msgs[i] })
	return s
}

// svixSender delivers messages as Svix does: a non-2xx answer or no answer
// is retried until the message is accepted.
type svixSender struct {
	t        *testing.T
	client   *http.Client
	acked    sync.Map // svix id → true, once answered 2xx
	statuses sync.Map // status → *atomic.Int64
}

func newSender(t *testing.T) *svixSender {
	return &svixSender{t: t, client: &http.Client{Timeout: 20 * time.Second}}
}

func (s *svixSender) deliver(url string, m message, deadline time.Time) {
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(m.body))
		req.Header = signed(s.t, secret1, m.id, time.Now(), m.body)
		resp, err := s.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.count(resp.StatusCode)
			if resp.StatusCode/100 == 2 {
				s.acked.Store(m.id, true)
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Errorf("%s never accepted", m.id)
}

func (s *svixSender) count(status int) {
	n, _ := s.statuses.LoadOrStore(status, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (s *svixSender) status(code int) int64 {
	if n, ok := s.statuses.Load(code); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// sendAll delivers every message from workers goroutines, to urls in turn.
func (s *svixSender) sendAll(msgs []message, workers int, urls ...string) {
	deadline := time.Now().Add(90 * time.Second)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range next {
				s.deliver(urls[(i+w)%len(urls)], msgs[i], deadline)
			}
		})
	}
	for i := range msgs {
		next <- i
	}
	close(next)
	wg.Wait()
}

// wantModel checks the table against the stream's model: every user at
// its newest version with that version's email, one webhook_events row per
// svix id, and every acknowledged id recorded.
func wantModel(t *testing.T, db *gorm.DB, st stream, s *svixSender) {
	t.Helper()
	ctx := context.Background()
	for id, v := range st.want {
		u, err := modelstest.FindUser(ctx, db, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		wantEmail := fmt.Sprintf("%s.v%d@example.com", id, v)
		if u.ClerkUpdatedAt != v || u.Email == nil || *u.Email != wantEmail {
			t.Errorf("%s = (%d, %v), want (%d, %s)", id, u.ClerkUpdatedAt, u.Email, v, wantEmail)
		}
	}
	var recorded []string
	if err := db.Model(&models.WebhookEvent{}).Pluck("svix_id", &recorded).Error; err != nil {
		t.Fatal(err)
	}
	if len(recorded) != len(st.msgs) {
		t.Errorf("webhook_events rows = %d, want one per svix id (%d)", len(recorded), len(st.msgs))
	}
	seen := map[string]bool{}
	for _, id := range recorded {
		seen[id] = true
	}
	s.acked.Range(func(id, _ any) bool {
		if !seen[id.(string)] {
			t.Errorf("%s was acknowledged but is not recorded", id)
		}
		return true
	})
}

func quietHandler(t *testing.T, db *gorm.DB) http.Handler {
	t.Helper()
	v, err := handlers.NewVerifier([]string{secret1})
	if err != nil {
		t.Fatal(err)
	}
	return handlers.New(handlers.Deps{DB: db, Log: slog.New(slog.DiscardHandler), Webhooks: v})
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Postgres stops in the middle of a stream and comes back: every event
// answered 2xx is in the table, the rest are retried until accepted, the
// table ends equal to the model, and /readyz follows the database without
// the service restarting.
func TestPostgresStoppedMidStream(t *testing.T) {
	cluster := modelstest.StartCluster(t)
	db := modelstest.Open(t, models.Postgres, cluster.URL())
	srv := httptest.NewServer(quietHandler(t, db))
	defer srv.Close()

	st := newStream(12, 25)
	sender := newSender(t)
	done := make(chan struct{})
	go func() {
		sender.sendAll(st.msgs, 8, srv.URL+"/api/webhooks/clerk")
		close(done)
	}()
	waitFor(t, "a third of the stream acknowledged", func() bool { return countAcked(sender) > len(st.msgs)/3 })
	cluster.Stop()
	waitFor(t, "/readyz to answer 503", func() bool { return status(t, srv.URL+"/readyz") == 503 })
	time.Sleep(500 * time.Millisecond) // deliveries fail meanwhile and are retried
	cluster.Start()
	waitFor(t, "/readyz to answer 200 again", func() bool { return status(t, srv.URL+"/readyz") == 200 })
	<-done

	if sender.status(503) == 0 {
		t.Error("no delivery was refused while Postgres was down; the outage was not exercised")
	}
	wantModel(t, db, st, sender)
}

func countAcked(s *svixSender) int {
	n := 0
	s.acked.Range(func(_, _ any) bool { n++; return true })
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A statement that hangs behind another session's lock is answered 503
// within the database deadline, far inside Svix's 15 s, and applies once
// the lock is gone.
func TestHangingStatementAnswers503(t *testing.T) {
	db := modelstest.New(t, models.Postgres)
	h := quietHandler(t, db)
	body := userEvent("user.created", "user_1", 1, "a@example.com")
	wantResponse(t, post(h, body, signed(t, secret1, "msg_1", time.Now(), body)), 200, `{"outcome":"applied"}`)

	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := sqlDB.BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec("SELECT 1 FROM users WHERE id = 'user_1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	body = userEvent("user.updated", "user_1", 2, "a@example.com")
	start := time.Now()
	rec := post(h, body, signed(t, secret1, "msg_2", time.Now(), body))
	took := time.Since(start)
	wantResponse(t, rec, 503, `{"error":"database unavailable, retry later"}`)
	if took < handlers.DBTimeout-time.Second || took > handlers.DBTimeout+2*time.Second {
		t.Errorf("answered after %s, want about the %s database deadline", took, handlers.DBTimeout)
	}
	lock.Rollback()
	// Svix redelivers: applied now, or "duplicate" if the first attempt
	// committed just after its caller was answered 503. Either way the
	// update is in the table.
	rec = post(h, body, signed(t, secret1, "msg_2", time.Now(), body))
	if got := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || (got != `{"outcome":"applied"}` && got != `{"outcome":"duplicate"}`) {
		t.Fatalf("redelivery answered %d %s", rec.Code, got)
	}
	if u, err := modelstest.FindUser(context.Background(), db, "user_1"); err != nil || u.ClerkUpdatedAt != 2 {
		t.Fatalf("user_1 = %+v, %v; want the update applied", u, err)
	}
}

// Two instances on one database receive the same shuffled stream, every
// message delivered to both, directly and through a transaction-mode pooler
// (PgBouncer) with the plain pooled URL: every delivery is answered 200 at
// the first attempt, and the table ends equal to the model with one
// webhook_events row per svix id.
func TestReplicasShareOneDatabase(t *testing.T) {
	for _, conn := range []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"direct", func(t testing.TB) string { return modelstest.NewDSN(t, models.Postgres) }},
		{"pgbouncer", modelstest.PooledDSN},
	} {
		t.Run(conn.name, func(t *testing.T) {
			dsn := conn.dsn(t)
			check := modelstest.Open(t, models.Postgres, dsn)
			var urls []string
			for range 2 {
				db, err := models.Open(context.Background(), models.Postgres, dsn, models.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { models.Close(db) })
				srv := httptest.NewServer(quietHandler(t, db))
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL+"/api/webhooks/clerk")
			}
			st := newStream(10, 30)
			var both []message
			for _, m := range st.msgs {
				both = append(both, m, m) // once per replica
			}
			rand.Shuffle(len(both), func(i, j int) { both[i], both[j] = both[j], both[i] })
			sender := newSender(t)
			sender.sendAll(both, 16, urls...)

			var answers int64
			sender.statuses.Range(func(_, n any) bool { answers += n.(*atomic.Int64).Load(); return true })
			if ok := sender.status(200); ok != int64(len(both)) || answers != ok {
				t.Errorf("%d answers to %d deliveries, %d of them 200 (503: %d); want every first attempt 200",
					answers, len(both), ok, sender.status(503))
			}
			wantModel(t, check, st, sender)
		})
	}
}
