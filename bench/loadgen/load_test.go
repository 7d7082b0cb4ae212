package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/clerkapi/clerktest"
)

// fire counts every answered request by status, and nothing else.
func TestFireReportsStatuses(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	g := &getGen{url: srv.URL}
	next, _ := g.requests()
	rep := fire(context.Background(), loadOptions{Concurrency: 4, Duration: 300 * time.Millisecond}, next)
	if rep.Requests == 0 || rep.Status["200"]+rep.Status["503"] != rep.Requests || rep.Status["503"] == 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.P50ms <= 0 || rep.P99ms < rep.P50ms || rep.MaxMs < rep.P99ms || rep.Rate <= 0 {
		t.Errorf("latencies %+v", rep)
	}
}

// The webhook generator signs what it sends with the secret it was given,
// and redelivers some messages under their first svix-id.
func TestWebhookGeneratorSigns(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	g := &webhookGen{url: "http://127.0.0.1:1/api/webhooks/clerk", secret: secret, users: 10, duplicates: 0.5}
	next, err := g.requests()
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := svix.NewWebhook(secret)
	seen := map[string]int{}
	for range 200 {
		req, err := next()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(req.Body)
		if err := wh.Verify(body, req.Header); err != nil {
			t.Fatalf("generated event does not verify: %v", err)
		}
		seen[req.Header.Get("svix-id")]++
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	if dups < 50 || dups > 150 {
		t.Errorf("%d redeliveries in 200 requests at 0.5", dups)
	}
}

// The login mode's fake Clerk signs with a key of the load tool's own: a
// -key file is made once (owner-only) and reused, so a warm-up and a
// measured run against one service share the JWKS it cached; it is never
// the tests' committed key.
func TestLoginSigningKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clerk-key.pem")
	first, err := signingKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", info.Mode().Perm())
	}
	again, err := signingKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(first) {
		t.Error("the key file gave another key the second time")
	}
	g := &loginGen{clerkAddr: "127.0.0.1:0", keyFile: path, users: 1}
	if _, err := g.requests(); err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if !g.fake.Key.Equal(first) || g.fake.Key.Equal(clerktest.TestKey()) {
		t.Error("the fake Clerk does not sign with the -key file's key")
	}
}
