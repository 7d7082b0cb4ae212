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

	svix "github.com/svix/svix-webhooks/go"
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
	g.version.Store(time.Now().UnixMilli() * 1000)
	runID := rand.Text()[:8] // svix ids unique across runs on one database
	return func() (*http.Request, error) {
		msg := g.pick(runID)
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
func (g *webhookGen) pick(runID string) sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.recent) > 0 && mrand.Float64() < g.duplicates {
		return g.recent[mrand.IntN(len(g.recent))]
	}
	n := g.seq.Add(1)
	m := sent{id: fmt.Sprintf("msg_%s_%d", runID, n), body: g.event(mrand.IntN(g.users))}
	if len(g.recent) < 256 {
		g.recent = append(g.recent, m)
	} else {
		g.recent[n%256] = m
	}
	return m
}

// event is a Clerk user event shaped (and sized, about 1.5 KB) like Clerk's.
func (g *webhookGen) event(user int) []byte {
	typ := "user.updated"
	if mrand.IntN(10) == 0 {
		typ = "user.created"
	}
	v := g.version.Add(1)
	id := fmt.Sprintf("user_2load%08d", user)
	return fmt.Appendf(nil, `{"data":{"backup_code_enabled":false,"banned":false,"create_organization_enabled":true,`+
		`"created_at":1700000000000,"delete_self_enabled":true,"email_addresses":[{"created_at":1700000000000,`+
		`"email_address":"load%08d@example.com","id":"idn_e%s","linked_to":[],"object":"email_address",`+
		`"reserved":false,"updated_at":1700000000000,"verification":{"attempts":null,"expire_at":null,`+
		`"status":"verified","strategy":"email_code"}}],"external_accounts":[],"external_id":null,`+
		`"first_name":"Load","has_image":true,"id":"%s","image_url":"https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2ltYWdlcy5jbGVyay5kZXYvb2F1dGhfZ29vZ2xlL2ltZ18yIn0",`+
		`"last_active_at":1700000000000,"last_name":"Tester %d","last_sign_in_at":1700000000000,"locked":false,`+
		`"lockout_expires_in_seconds":null,"mfa_disabled_at":null,"mfa_enabled_at":null,"object":"user",`+
		`"passkeys":[],"password_enabled":true,"phone_numbers":[],"primary_email_address_id":"idn_e%s",`+
		`"primary_phone_number_id":null,"primary_web3_wallet_id":null,"private_metadata":{},`+
		`"profile_image_url":"https://www.gravatar.com/avatar?d=mp","public_metadata":{},"saml_accounts":[],`+
		`"totp_enabled":false,"two_factor_enabled":false,"unsafe_metadata":{},"updated_at":%d,"username":null,`+
		`"verification_attempts_remaining":100,"web3_wallets":[]},"event_attributes":{"http_request":`+
		`{"client_ip":"","user_agent":""}},"instance_id":"ins_load","object":"event","timestamp":%d,"type":%q}`,
		user, id, id, v, id, v, v/1000, typ)
}
