package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
)

// instanceGuard holds the Clerk instance the database mirrors (contract
// section 9), read once and then kept: only `usersync backfill --rebind`
// changes it, and the service is restarted after that.
type instanceGuard struct {
	mu    sync.Mutex
	bound string // "" until known
}

// check compares an event's instance_id with the database's, binding the
// database to it when it mirrors none yet. An event without instance_id is
// accepted, as Clerk's older events carry none.
func (g *instanceGuard) check(ctx context.Context, db *gorm.DB, instance string) (foreign bool, bound string, err error) {
	if instance == "" {
		return false, "", nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bound == "" {
		if g.bound, err = models.BindInstance(ctx, db, instance); err != nil {
			return false, "", err
		}
	}
	return g.bound != instance, g.bound, nil
}

// errForeignInstance is the answer to a signed event of another instance.
func errForeignInstance(event, bound string) error {
	msg := fmt.Sprintf("event from Clerk instance %s; this database mirrors %s", clip(event), bound)
	return fail(http.StatusConflict, msg, errors.New(msg)) // the cause makes it logged
}
