package models_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// The first instance learned is kept; another is refused; only a rebind
// changes it.
func TestInstanceBinding(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		if bound, err := models.BoundInstance(ctx, db); err != nil || bound != "" {
			t.Fatalf("new database: bound %q, %v; want none", bound, err)
		}
		if bound, err := models.BindInstance(ctx, db, "ins_prod"); err != nil || bound != "ins_prod" {
			t.Fatalf("first bind: %q, %v", bound, err)
		}
		if bound, err := models.BindInstance(ctx, db, "ins_dev"); err != nil || bound != "ins_prod" {
			t.Fatalf("second bind: %q, %v; want ins_prod kept", bound, err)
		}
		if err := models.GuardInstance(ctx, db, "ins_prod"); err != nil {
			t.Errorf("guard with the bound instance: %v", err)
		}
		err := models.GuardInstance(ctx, db, "ins_dev")
		var mismatch *models.InstanceMismatchError
		if !errors.As(err, &mismatch) || mismatch.Bound != "ins_prod" || mismatch.Key != "ins_dev" {
			t.Fatalf("guard with another instance: %v", err)
		}
		want := "CLERK_SECRET_KEY belongs to Clerk instance ins_dev, but this database mirrors ins_prod: use a key of ins_prod, " +
			"or make this database mirror ins_dev on purpose with 'usersync backfill --rebind'"
		if err.Error() != want {
			t.Errorf("message:\n got %s\nwant %s", err, want)
		}
		if before, err := models.RebindInstance(ctx, db, "ins_dev"); err != nil || before != "ins_prod" {
			t.Fatalf("rebind: before %q, %v", before, err)
		}
		if bound, _ := models.BoundInstance(ctx, db); bound != "ins_dev" {
			t.Errorf("after rebind: %q", bound)
		}
	})
}
