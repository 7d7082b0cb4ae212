package check

import (
	"context"
	"fmt"
	"time"

	"github.com/usersync/usersync/models"
)

// LastWebhook reports (for information, never failing) how long ago a
// webhook delivery last changed a row: a long silence in a busy app means
// Clerk stopped delivering.
func (c *Checker) LastWebhook(ctx context.Context) Result {
	const name = "last webhook"
	if c.db == nil {
		return Result{Name: name, Status: Skip, Detail: "the database is not reachable"}
	}
	at, err := models.LastAppliedWebhook(ctx, c.db)
	switch {
	case err != nil:
		return Result{Name: name, Status: Skip, Detail: "cannot read webhook_events: " + oneLine(err)}
	case at.IsZero():
		return ok(name, "no webhook has changed a row yet")
	}
	return ok(name, "a delivery last changed a row %s ago", c.age(at))
}

// LastReconcile reports (for information, never failing) how long ago the
// last successful reconcile pass began, beside the configured intervals.
func (c *Checker) LastReconcile(ctx context.Context) Result {
	const name = "reconcile"
	if c.db == nil {
		return Result{Name: name, Status: Skip, Detail: "the database is not reachable"}
	}
	st, err := models.ReadReconcileState(ctx, c.db)
	if err != nil {
		return Result{Name: name, Status: Skip, Detail: "cannot read sync_state: " + oneLine(err)}
	}
	setting := c.reconcileSetting()
	if st.LastSuccessAt == 0 {
		return ok(name, "no successful pass yet (%s)", setting)
	}
	return ok(name, "the last successful pass began %s ago (%s)", c.age(time.UnixMilli(st.LastSuccessAt)), setting)
}

// reconcileSetting says what this configuration makes serve do.
func (c *Checker) reconcileSetting() string {
	switch {
	case c.Cfg.ReconcileInterval == 0:
		return "off here: SYNC_RECONCILE_INTERVAL is 0"
	case c.Cfg.ClerkSecretKey == "":
		return "off here: CLERK_SECRET_KEY is not set"
	case c.Cfg.FullReconcileInterval == 0:
		return fmt.Sprintf("every %s, no full pass after the first", c.Cfg.ReconcileInterval)
	}
	return fmt.Sprintf("every %s, a full pass every %s", c.Cfg.ReconcileInterval, c.Cfg.FullReconcileInterval)
}

// age is how long ago at was, rounded for reading.
func (c *Checker) age(at time.Time) time.Duration {
	d := c.now().Sub(at)
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}
