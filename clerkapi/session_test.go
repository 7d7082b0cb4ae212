package clerkapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// A verified token is remembered, but never past its exp (plus leeway).
func TestVerifiedTokenCacheHonoursExpiry(t *testing.T) {
	fake := clerktest.New(t)
	c := &clock{now: time.Now()}
	v, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{JWTKey: fake.PublicKeyPEM(), Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	claims := clerktest.Claims("user_1")
	claims["exp"] = c.now.Add(30 * time.Second).Unix()
	tok := fake.Token(claims)
	for _, after := range []time.Duration{0, 30 * time.Second, 34 * time.Second} {
		c.now = time.Unix(claims["iat"].(int64), 0).Add(after)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("at +%s: %v", after, err)
		}
	}
	c.now = time.Unix(claims["exp"].(int64), 0).Add(clerkapi.Leeway + time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, clerkapi.ErrInvalidSession) {
		t.Fatalf("after exp+leeway: err = %v, want ErrInvalidSession", err)
	}
}

// Fetched keys are refreshed after an hour, and the held keys keep working
// while Clerk cannot be reached.
func TestJWKSRefreshedAfterTTL(t *testing.T) {
	fake := clerktest.New(t)
	c := &clock{now: time.Now()}
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	v, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{Client: client, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(sub string) error {
		claims := clerktest.Claims(sub)
		claims["iat"], claims["nbf"], claims["exp"] = c.now.Unix(), c.now.Unix(), c.now.Add(time.Minute).Unix()
		_, err := v.Verify(context.Background(), fake.Token(claims))
		return err
	}
	if err := verify("user_1"); err != nil {
		t.Fatal(err)
	}
	c.now = c.now.Add(30 * time.Minute)
	if err := verify("user_2"); err != nil || fake.Hits(clerktest.OpJWKS) != 1 {
		t.Fatalf("within the hour: err %v, JWKS fetches %d, want 1", err, fake.Hits(clerktest.OpJWKS))
	}
	c.now = c.now.Add(31 * time.Minute)
	if err := verify("user_3"); err != nil || fake.Hits(clerktest.OpJWKS) != 2 {
		t.Fatalf("after the hour: err %v, JWKS fetches %d, want 2", err, fake.Hits(clerktest.OpJWKS))
	}
	c.now = c.now.Add(2 * time.Hour)
	fake.FailNext(clerktest.OpJWKS, clerktest.Failure{Status: 503})
	if err := verify("user_4"); err != nil {
		t.Fatalf("Clerk down at refresh: %v; the held keys should still verify", err)
	}
}

// Retry-After is read in both of its forms: seconds and an HTTP date.
func TestRetryAfterForms(t *testing.T) {
	fake := clerktest.New(t)
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	at := time.Now().Add(42 * time.Second).UTC().Format(http.TimeFormat)
	for header, want := range map[string]time.Duration{"7": 7 * time.Second, at: 42 * time.Second} {
		fake.FailNext(clerktest.OpListUsers, clerktest.Failure{Status: 429, RetryAfter: header})
		_, err := client.ListUsers(context.Background(), 0, 10)
		got := clerkapi.RetryAfter(err)
		if !errors.Is(err, clerkapi.ErrRateLimited) || got < want-2*time.Second || got > want {
			t.Errorf("Retry-After %q: wait %s (err %v), want about %s", header, got, err, want)
		}
	}
}

// A 429 from the JWKS holds off the next fetch for its Retry-After (longer
// than the usual ten seconds); tokens in between are answered from what is
// held, without a call.
func TestJWKSHonoursRetryAfter(t *testing.T) {
	fake := clerktest.New(t)
	c := &clock{now: time.Now()}
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	v, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{Client: client, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNext(clerktest.OpJWKS, clerktest.Failure{Status: 429, RetryAfter: "30"})
	start := c.now
	for _, step := range []struct {
		after   time.Duration
		wantErr error
		hits    int
	}{
		{0, clerkapi.ErrRateLimited, 1},
		{15 * time.Second, clerkapi.ErrKeysUnavailable, 1}, // past the 10 s interval, inside Retry-After
		{29 * time.Second, clerkapi.ErrKeysUnavailable, 1},
		{31 * time.Second, nil, 2},
	} {
		c.now = start.Add(step.after)
		claims := clerktest.Claims("user_1")
		claims["exp"] = c.now.Add(time.Minute).Unix()
		_, err := v.Verify(context.Background(), fake.Token(claims))
		if (step.wantErr == nil) != (err == nil) || (step.wantErr != nil && !errors.Is(err, step.wantErr)) {
			t.Fatalf("at +%s: err = %v, want %v", step.after, err, step.wantErr)
		}
		if n := fake.Hits(clerktest.OpJWKS); n != step.hits {
			t.Fatalf("at +%s: JWKS calls = %d, want %d", step.after, n, step.hits)
		}
	}
}

// A fetch whose caller hangs up still completes, and counts: the callers
// after it are answered from its result.
func TestJWKSFetchOutlivesItsCaller(t *testing.T) {
	fake := clerktest.New(t)
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
	v, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNext(clerktest.OpJWKS, clerktest.Failure{Delay: 200 * time.Millisecond})
	tok := fake.Token(clerktest.Claims("user_1"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := v.Verify(ctx, tok); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung-up caller: err = %v", err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("next caller: %v", err)
	}
	if n := fake.Hits(clerktest.OpJWKS); n != 1 {
		t.Errorf("JWKS calls = %d, want 1", n)
	}
}
