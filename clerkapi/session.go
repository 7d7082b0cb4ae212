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

	fetchMu   sync.Mutex // one JWKS fetch at a time
	mu        sync.RWMutex
	keys      map[string]*clerk.JSONWebKey // by kid
	fetchedAt time.Time

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
// for kid. The JWKS is fetched again when kid is unknown (at most once per
// jwksRefetchInterval, so made-up kids cannot hammer Clerk) or the keys are
// older than jwksTTL (so a key Clerk removed stops verifying). Callers that
// arrive during a fetch wait for it; lookups of fresh keys never wait. If
// Clerk cannot be reached, the keys already held keep working.
func (v *SessionVerifier) key(ctx context.Context, kid string) (*clerk.JSONWebKey, error) {
	if v.staticKey != nil {
		return v.staticKey, nil
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrInvalidSession)
	}
	if k, at := v.cached(kid); k != nil && v.cfg.Clock.Now().Sub(at) < jwksTTL {
		return k, nil
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	k, fetchedAt := v.cached(kid)
	age := v.cfg.Clock.Now().Sub(fetchedAt)
	switch {
	case k != nil && age < jwksTTL:
		return k, nil // fetched by the caller we waited for
	case k == nil && !fetchedAt.IsZero() && age < jwksRefetchInterval:
		return nil, fmt.Errorf("%w: unknown kid", ErrInvalidSession)
	}
	set, err := v.cfg.Client.JWKS(ctx)
	if err != nil {
		if k != nil {
			return k, nil
		}
		return nil, err
	}
	keys := make(map[string]*clerk.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k != nil && k.KeyID != "" {
			keys[k.KeyID] = k
		}
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = keys, v.cfg.Clock.Now()
	v.mu.Unlock()
	if k := keys[kid]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: unknown kid", ErrInvalidSession)
}

func (v *SessionVerifier) cached(kid string) (*clerk.JSONWebKey, time.Time) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.keys[kid], v.fetchedAt
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
