package clerkapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrInstanceUnknown means the JWKS does not name one instance: no key, a
// kid that is not an instance id, or keys of several instances.
var ErrInstanceUnknown = errors.New("the JWKS does not name one Clerk instance")

// Instance is the Clerk instance (ins_…) the secret key belongs to: Clerk
// names its signing keys after their instance, so it is the kid of every
// key in the key's JWKS (GET /v1/jwks). It is known only when all the keys
// name the same instance.
func (c *Client) Instance(ctx context.Context) (string, error) {
	set, err := c.JWKS(ctx)
	if err != nil {
		return "", err
	}
	var kids []string
	for _, k := range set.Keys {
		if k != nil {
			kids = append(kids, k.KeyID)
		}
	}
	return instanceOfKeys(kids)
}

func instanceOfKeys(kids []string) (string, error) {
	if len(kids) == 0 {
		return "", fmt.Errorf("%w: it lists no key", ErrInstanceUnknown)
	}
	for _, kid := range kids {
		if !strings.HasPrefix(kid, "ins_") || kid != kids[0] {
			return "", fmt.Errorf("%w: its keys are named %s", ErrInstanceUnknown, strings.Join(kids, ", "))
		}
	}
	return kids[0], nil
}

// KeyKind says whether a secret key is a production or development key.
func KeyKind(secretKey string) string {
	switch {
	case strings.HasPrefix(secretKey, "sk_live_"):
		return "a production (sk_live_) key"
	case strings.HasPrefix(secretKey, "sk_test_"):
		return "a development (sk_test_) key"
	}
	return "neither a sk_live_ nor a sk_test_ key"
}
