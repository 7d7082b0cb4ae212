package clerkapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwt"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
)

// ErrInvalidSession is returned for any token that does not verify; the
// wrapped text says why (for logs), the client only ever sees 401.
var ErrInvalidSession = errors.New("invalid session token")

// Leeway is the clock skew allowed on exp and nbf.
const Leeway = 5 * time.Second

// jwksRefetchInterval bounds how often an unknown kid may trigger a JWKS
// fetch, so a flood of tokens with made-up kids cannot hammer Clerk.
const jwksRefetchInterval = 10 * time.Second

// maxJWKSBackoff caps how long a 429's Retry-After can hold off the next fetch.
const maxJWKSBackoff = 10 * time.Minute

// ErrKeysUnavailable means the last JWKS fetch (started by another caller)
// failed and no key held matches; it wraps ErrUnavailable. Every such token
// gets it without a call to Clerk until the next fetch is allowed.
var ErrKeysUnavailable = fmt.Errorf("%w: signing keys unavailable", ErrUnavailable)

// jwksTTL is how long fetched keys are trusted before the JWKS is fetched
// again, so a key Clerk has rotated out stops verifying.
const jwksTTL = time.Hour

// SessionConfig is how session tokens are checked.
type SessionConfig struct {
	// JWTKey is CLERK_JWT_KEY (PEM); when set no network call is made.
	JWTKey string
	// Client fetches the JWKS when JWTKey is empty.
	Client *Client
	// Issuer, when set, must equal the token's iss exactly.
	Issuer string
	// AuthorizedParties, when set, must contain the token's azp.
	AuthorizedParties []string
	// Clock replaces time.Now in tests.
	Clock clerk.Clock
}

// SessionVerifier verifies Clerk session tokens: RS256 only, exp required,
// exp/nbf with Leeway, exact issuer and azp when configured.
type SessionVerifier struct {
	cfg       SessionConfig
	staticKey *clerk.JSONWebKey

	mu        sync.Mutex
	keys      map[string]*clerk.JSONWebKey // by kid
	fetchedAt time.Time                    // of the keys held
	fetchErr  error                        // of the last fetch, nil when it succeeded
	nextFetch time.Time                    // no fetch starts before this
	fetching  chan struct{}                // closed when the fetch in flight ends

	verified tokenCache
}

// NewSessionVerifier checks the configuration (a bad CLERK_JWT_KEY is an error).
func NewSessionVerifier(cfg SessionConfig) (*SessionVerifier, error) {
	if cfg.Clock == nil {
		cfg.Clock = clerk.NewClock()
	}
	v := &SessionVerifier{cfg: cfg}
	if cfg.JWTKey != "" {
		key, err := clerk.JSONWebKeyFromPEM(cfg.JWTKey)
		if err != nil {
			return nil, fmt.Errorf("CLERK_JWT_KEY: %w", err)
		}
		v.staticKey = key
	} else if cfg.Client == nil {
		return nil, errors.New("session verification needs CLERK_JWT_KEY or CLERK_SECRET_KEY")
	}
	return v, nil
}

// Verify returns the claims of a valid token. An invalid token gives an
// error wrapping ErrInvalidSession; a JWKS that cannot be fetched gives one
// wrapping ErrUnavailable.
func (v *SessionVerifier) Verify(ctx context.Context, token string) (*clerk.SessionClaims, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", ErrInvalidSession)
	}
	if claims := v.verified.get(token, v.cfg.Clock.Now()); claims != nil {
		return claims, nil
	}
	claims, err := v.verify(ctx, token)
	if err == nil {
		v.verified.put(token, claims)
	}
	return claims, err
}

func (v *SessionVerifier) verify(ctx context.Context, token string) (*clerk.SessionClaims, error) {
	parsed, err := josejwt.ParseSigned(token)
	if err != nil || len(parsed.Headers) != 1 {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidSession)
	}
	// Only RS256: this also rules out "none" and HS256 signed with the public key.
	if alg := parsed.Headers[0].Algorithm; alg != "RS256" {
		return nil, fmt.Errorf("%w: algorithm %q", ErrInvalidSession, alg)
	}
	key, err := v.key(ctx, parsed.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	params := &jwt.VerifyParams{
		Token:  token,
		JWK:    key,
		Clock:  v.cfg.Clock,
		Leeway: Leeway,
		// The SDK checks azp only through this hook, and lets "" through.
		AuthorizedPartyHandler: v.authorizedParty,
	}
	if v.cfg.Issuer != "" {
		// With ProxyURL the SDK compares iss exactly; without, only a prefix.
		params.ProxyURL = clerk.String(v.cfg.Issuer)
	}
	claims, err := jwt.Verify(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSession, err)
	}
	// go-jose accepts a token without exp; a session token must expire.
	if claims.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrInvalidSession)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrInvalidSession)
	}
	return claims, nil
}

func (v *SessionVerifier) authorizedParty(azp string) bool {
	if len(v.cfg.AuthorizedParties) == 0 {
		return true
	}
	return azp != "" && slices.Contains(v.cfg.AuthorizedParties, azp)
}

// key finds the verification key: the static PEM key, or the JWKS entry
// for kid. The JWKS is fetched again when kid is unknown or the keys are
// older than jwksTTL (so a key Clerk removed stops verifying), but at most
// once per jwksRefetchInterval, or later when Clerk's 429 asked for longer,
// whether the fetch succeeds, fails or its caller hangs up: made-up kids or
// a failing Clerk cannot make the service hammer the Backend API. The fetch
// runs detached from the caller's request, one at a time; callers that
// arrive during it wait for it (or until their own request ends). If Clerk
// cannot be reached, the keys already held keep working.
func (v *SessionVerifier) key(ctx context.Context, kid string) (*clerk.JSONWebKey, error) {
	if v.staticKey != nil {
		return v.staticKey, nil
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidSession)
	}
	now := v.cfg.Clock.Now()
	v.mu.Lock()
	k := v.keys[kid]
	if k != nil && now.Sub(v.fetchedAt) < jwksTTL {
		v.mu.Unlock()
		return k, nil
	}
	done, started := v.fetching, false
	if done == nil && !now.Before(v.nextFetch) {
		done, started = make(chan struct{}), true
		v.fetching, v.nextFetch = done, now.Add(jwksRefetchInterval)
		go v.fetch(done)
	}
	v.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return v.lookup(kid, started)
}

// lookup answers from the keys held after the last fetch; started says
// whether this caller started that fetch, and so reports its failure.
// Everyone else gets ErrKeysUnavailable.
func (v *SessionVerifier) lookup(kid string, started bool) (*clerk.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.keys[kid] != nil:
		return v.keys[kid], nil
	case v.fetchErr != nil && started:
		return nil, v.fetchErr
	case v.fetchErr != nil:
		// The kid may be one Clerk has just rotated in: not the caller's fault.
		return nil, fmt.Errorf("%w until %s after: %w", ErrKeysUnavailable, v.nextFetch.UTC().Format(time.RFC3339), v.fetchErr)
	}
	return nil, fmt.Errorf("%w: unknown kid", ErrInvalidSession)
}

// fetch gets the JWKS on a context of its own, so a caller hanging up
// cannot abort it, and records the keys or the failure.
func (v *SessionVerifier) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	set, err := v.cfg.Client.JWKS(ctx)
	now := v.cfg.Clock.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	defer close(done)
	v.fetching = nil
	if err != nil {
		v.fetchErr = err
		if wait := min(RetryAfter(err), maxJWKSBackoff); now.Add(wait).After(v.nextFetch) {
			v.nextFetch = now.Add(wait)
		}
		return
	}
	keys := make(map[string]*clerk.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k != nil && k.KeyID != "" {
			keys[k.KeyID] = k
		}
	}
	v.keys, v.fetchedAt, v.fetchErr = keys, now, nil
}

// maxVerifiedTokens bounds the cache of verified tokens.
const maxVerifiedTokens = 10_000

// tokenCache remembers tokens that verified, until they expire: a frontend
// sends the same session token (valid for about a minute) on several calls,
// and an RS256 verification costs more than the rest of a fresh answer.
// Keys are SHA-256 digests, so the cache holds no token.
type tokenCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*clerk.SessionClaims
}

func (c *tokenCache) get(token string, now time.Time) *clerk.SessionClaims {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	claims := c.entries[key]
	if claims == nil || !now.Before(expiry(claims)) {
		return nil
	}
	return claims
}

func (c *tokenCache) put(token string, claims *clerk.SessionClaims) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerifiedTokens {
		c.entries = make(map[[32]byte]*clerk.SessionClaims) // forgetting only costs a verification
	}
	c.entries[key] = claims
}

// expiry is when a verified token stops being accepted: exp plus Leeway,
// as the full verification would decide.
func expiry(c *clerk.SessionClaims) time.Time {
	return time.Unix(*c.Expiry, 0).Add(Leeway)
}
