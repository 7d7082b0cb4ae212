package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// BenchmarkSyncFresh measures a login-time sync answered "fresh" from the
// table: session verification (RS256, networkless key), one indexed read,
// the JSON answer. It reports the median and p99 per request.
//
//	go test -run '^$' -bench SyncFresh -benchtime 5000x ./handlers/
func BenchmarkSyncFresh(b *testing.B) {
	for _, d := range modelstest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := modelstest.New(b, d)
			fake := clerktest.New(b)
			user := clerktest.User("user_bench", 100, "bench@example.com", nil)
			s, err := clerkapi.SnapshotFromJSON(mustJSON(b, user))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := models.ApplySnapshot(context.Background(), db, s, models.SourceWebhook); err != nil {
				b.Fatal(err)
			}
			sessions, _ := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{JWTKey: fake.PublicKeyPEM()})
			h := handlers.New(handlers.Deps{
				DB: db, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), SyncFreshness: time.Hour,
				Clerk: clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil), Sessions: sessions, SyncRate: rate.Inf,
			})
			tok := fake.Token(clerktest.Claims("user_bench"))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/api/user/sync", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				if rec.Code != 200 {
					b.Fatalf("status %d %s", rec.Code, rec.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if n := fake.Hits(clerktest.OpGetUser); n != 0 {
				b.Fatalf("fresh answers called Clerk %d times", n)
			}
		})
	}
}
