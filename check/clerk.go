package check

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
)

// MaxClockSkew is Svix's timestamp tolerance: a webhook whose timestamp is
// further from this machine's clock is refused.
const MaxClockSkew = 5 * time.Minute

// ClerkKey asks the Backend API for one user with CLERK_SECRET_KEY, and
// keeps the answer's Date for Clock.
func (c *Checker) ClerkKey(ctx context.Context) Result {
	const name = "clerk api key"
	if c.Cfg.ClerkSecretKey == "" {
		return fail(name, "CLERK_SECRET_KEY is not set: POST /api/user/sync answers 503 and backfill cannot run; "+
			"set it to the Secret key from Clerk Dashboard → API keys")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shown := config.MaskURL(c.Cfg.ClerkAPIURL) // it may carry credentials
	answer, err := c.clerk().ProbeKey(ctx)
	switch {
	case errors.Is(err, clerkapi.ErrNotClerkAnswer):
		return fail(name, "%s answered GET /v1/users, but not as Clerk's Backend API does: check CLERK_API_URL", shown)
	case err != nil:
		return fail(name, "cannot reach Clerk at CLERK_API_URL (%s): %s", shown, oneLine(withoutURL(err)))
	}
	c.clerkDate = answer.Date
	switch {
	case answer.Status == http.StatusUnauthorized || answer.Status == http.StatusForbidden:
		return fail(name, "%s", RefusedKey(answer.Status))
	case answer.Status != http.StatusOK:
		return fail(name, "GET %s/v1/users answered %d: check CLERK_API_URL, or Clerk's status page", shown, answer.Status)
	}
	return ok(name, "accepted by %s (GET /v1/users?limit=1 answered 200)", shown)
}

// RefusedKey says what to do when Clerk answered status (401 or 403) to
// CLERK_SECRET_KEY; backfill says the same.
func RefusedKey(status int) string {
	return fmt.Sprintf("Clerk refused CLERK_SECRET_KEY (%d): copy the Secret key (sk_live_… or sk_test_…) of this instance from Clerk Dashboard → API keys", status)
}

// clerk is the Backend API client the Clerk checks share.
func (c *Checker) clerk() *clerkapi.Client {
	if c.clerkClient == nil {
		c.clerkClient = clerkapi.NewClient(c.Cfg.ClerkAPIURL, c.Cfg.ClerkSecretKey, c.HTTP)
	}
	return c.clerkClient
}

// withoutURL drops the request URL that net/http repeats in its errors:
// it strips a password from it, not a user name that may be a key.
func withoutURL(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// Clock compares this machine's clock with the Date of Clerk's answer.
func (c *Checker) Clock(context.Context) Result {
	const name = "clock"
	if c.clerkDate.IsZero() {
		return Result{Name: name, Status: Skip, Detail: "not compared: no answer from Clerk"}
	}
	skew := c.now().Sub(c.clerkDate).Round(time.Second)
	direction, size := "ahead of", skew
	if skew < 0 {
		direction, size = "behind", -skew
	}
	if size > MaxClockSkew {
		return fail(name, "this machine's clock is %s %s Clerk's: Svix refuses webhooks whose timestamp is more than 5 minutes off "+
			"(every delivery would be answered 400); synchronise the clock (NTP)", size, direction)
	}
	return ok(name, "within %s of Clerk's (Svix tolerates 5m)", size)
}

// WebhookSecret reports whether a real signing secret is configured (its
// form was checked by config.Load).
func (c *Checker) WebhookSecret(context.Context) Result {
	const name = "webhook secret"
	n := len(c.Cfg.WebhookSecrets)
	if n == 0 {
		return fail(name, "CLERK_WEBHOOK_SIGNING_SECRET is not set: the development secret is in use and Clerk's real events are refused; "+
			"copy the endpoint's Signing Secret from Clerk Dashboard → Webhooks")
	}
	return ok(name, "%d whsec_ secret(s) set, each well-formed", n)
}

// CORS reports which browser origins may call the login-time sync, and
// whether their session tokens would pass the azp check.
func (c *Checker) CORS(context.Context) Result {
	const name = "cors"
	parties := c.Cfg.AuthorizedParties
	if len(parties) == 0 {
		return fail(name, "CLERK_AUTHORIZED_PARTIES is not set: session tokens minted for any origin are accepted; "+
			"set it to your frontend's origin(s), e.g. https://app.example.com")
	}
	for _, o := range c.Cfg.CORSAllowedOrigins {
		if !slices.Contains(parties, strings.TrimRight(o, "/")) {
			return fail(name, "CORS_ALLOWED_ORIGINS allows %s, which CLERK_AUTHORIZED_PARTIES does not list: its session tokens "+
				"would be refused (401); add it to CLERK_AUTHORIZED_PARTIES or remove it", o)
		}
	}
	if len(c.Cfg.CORSAllowedOrigins) == 0 {
		return ok(name, "no cross-origin callers: only same-origin calls (a rewrite or proxy) reach /api/user/sync")
	}
	return ok(name, "%s may call /api/user/sync from a browser", strings.Join(c.Cfg.CORSAllowedOrigins, ", "))
}
