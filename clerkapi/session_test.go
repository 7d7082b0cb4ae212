package clerkapi_test

import (
	"context"
	"errors"
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
