package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/clerkapi"
)

type webhookGen struct {
	url, secret, secretFile string
	users                   int
	duplicates              float64

	wh      *svix.Webhook
	version atomic.Int64 // strictly increasing updated_at, so events apply
	seq     atomic.Int64
	mu      sync.Mutex
	recent  []sent // ring of recent messages to redeliver
}

type sent struct {
	id   string
	body []byte
}

func webhookFlags(fs *flag.FlagSet) *webhookGen {
	g := &webhookGen{}
	fs.StringVar(&g.url, "url", "http://localhost:8080/api/webhooks/clerk", "webhook endpoint")
	fs.StringVar(&g.secret, "secret", os.Getenv("CLERK_WEBHOOK_SIGNING_SECRET"), "whsec_ signing secret (default $CLERK_WEBHOOK_SIGNING_SECRET)")
	fs.StringVar(&g.secretFile, "secret-file", "usersync.webhook-secret", "read the secret from this file when -secret is empty (serve's development secret)")
	fs.IntVar(&g.users, "users", 100_000, "distinct user ids to spread events over")
	fs.Float64Var(&g.duplicates, "duplicates", 0.02, "fraction of requests that redeliver a recent svix-id, as Svix retries do")
	return g
}

func (g *webhookGen) requests() (request, error) {
	if g.secret == "" {
		b, err := os.ReadFile(g.secretFile)
		if err != nil {
			return nil, errors.New("no signing secret: pass -secret or run next to serve's usersync.webhook-secret")
		}
		g.secret = strings.TrimSpace(string(b))
	}
	wh, err := svix.NewWebhook(g.secret)
	if err != nil {
		return nil, fmt.Errorf("-secret: %w", err)
	}
	g.wh = wh
	// One millisecond further per event: a run of a million events ends
	// about 17 minutes ahead of the clock, far within rule 11's 24 hours.
	g.version.Store(time.Now().UnixMilli())
	runID := rand.Text()[:8] // svix ids unique across runs on one database
	return func() (*http.Request, error) {
		msg, err := g.pick(runID)
		if err != nil {
			return nil, err
		}
		// One time for the signature and its header: two calls to time.Now
		// can fall in different seconds, and the signature would not match.
		at := time.Now()
		sig, err := g.wh.Sign(msg.id, at, msg.body)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(msg.body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("svix-id", msg.id)
		req.Header.Set("svix-timestamp", strconv.FormatInt(at.Unix(), 10))
		req.Header.Set("svix-signature", sig)
		return req, nil
	}, nil
}

// pick returns a recent message again (a redelivery) or a new event.
func (g *webhookGen) pick(runID string) (sent, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.recent) > 0 && mrand.Float64() < g.duplicates {
		return g.recent[mrand.IntN(len(g.recent))], nil
	}
	n := g.seq.Add(1)
	body, err := g.event(mrand.IntN(g.users))
	if err != nil {
		return sent{}, err
	}
	m := sent{id: fmt.Sprintf("msg_%s_%d", runID, n), body: body}
	if len(g.recent) < 256 {
		g.recent = append(g.recent, m)
	} else {
		g.recent[n%256] = m
	}
	return m, nil
}

// event is a Clerk user event shaped (and sized, about 1.5 KB) like Clerk's.
func (g *webhookGen) event(user int) ([]byte, error) {
	typ := "user.updated"
	if mrand.IntN(10) == 0 {
		typ = "user.created"
	}
	v := g.version.Add(1)
	id := fmt.Sprintf("user_2load%08d", user)
	u := clerkapi.NewUser(id, v, fmt.Sprintf("load%08d@example.com", user))
	u.FirstName, u.LastName = clerk.String("Load"), clerk.String(fmt.Sprintf("Tester %d", user))
	u.ImageURL = clerk.String("https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2ltYWdlcy5jbGVyay5kZXYvb2F1dGhfZ29vZ2xlL2ltZ18yIn0")
	const created = 1700000000000
	u.CreatedAt, u.EmailAddresses[0].CreatedAt, u.EmailAddresses[0].UpdatedAt = created, created, created
	u.LastSignInAt, u.LastActiveAt, u.PasswordEnabled = clerk.Int64(created), clerk.Int64(created), true
	return clerkapi.EventJSON(typ, "ins_load", time.Now(), u)
}
