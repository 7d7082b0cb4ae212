package check

import (
	"context"
	"errors"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Instance reports the Clerk instance the database mirrors, the instance
// CLERK_SECRET_KEY belongs to (the kid of its JWKS), and whether it is a
// development or production key. A key of another instance fails: serve
// and backfill would refuse it (contract section 9). It writes nothing: an
// unbound database stays unbound.
func (c *Checker) Instance(ctx context.Context) Result {
	const name = "instance"
	switch {
	case c.Cfg.ClerkSecretKey == "":
		return Result{Name: name, Status: Skip, Detail: "not compared: CLERK_SECRET_KEY is not set"}
	case c.db == nil:
		return Result{Name: name, Status: Skip, Detail: "not compared: the database is not reachable"}
	}
	kind := clerkapi.KeyKind(c.Cfg.ClerkSecretKey)
	bound, err := models.BoundInstance(ctx, c.db)
	if err != nil {
		return Result{Name: name, Status: Skip, Detail: "not compared: cannot read sync_state: " + oneLine(err)}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	key, err := c.clerk().Instance(ctx)
	switch {
	case errors.Is(err, clerkapi.ErrInstanceUnknown):
		return ok(name, "this database mirrors %s; CLERK_SECRET_KEY is %s whose instance is unknown (%s)", orNone(bound), kind, oneLine(err))
	case err != nil:
		return Result{Name: name, Status: Skip, Detail: "not compared: no answer from Clerk's JWKS"}
	case bound == "":
		return ok(name, "not bound yet: CLERK_SECRET_KEY is %s of instance %s, which serve or backfill will record", kind, key)
	case bound != key:
		return fail(name, "%s (it is %s)", (&models.InstanceMismatchError{Bound: bound, Key: key}).Error(), kind)
	}
	return ok(name, "this database mirrors %s; CLERK_SECRET_KEY is %s of that instance", bound, kind)
}

func orNone(instance string) string {
	if instance == "" {
		return "no instance yet"
	}
	return instance
}
