package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// The guard of contract section 9: a database mirrors one Clerk instance.
// It records the instance (ins_…) the first time it learns it, from a
// verified webhook event or from the JWKS of CLERK_SECRET_KEY, and after
// that only RebindInstance changes it.

// BoundInstance is the Clerk instance the database mirrors, "" until one
// was learned.
func BoundInstance(ctx context.Context, db *gorm.DB) (string, error) {
	var id string
	err := db.WithContext(ctx).Raw(`SELECT clerk_instance_id FROM sync_state WHERE id = 1`).Row().Scan(&id)
	return id, err
}

// BindInstance records instance as the one the database mirrors unless it
// already mirrors one, and returns the one it mirrors: instance, or the
// one recorded before (by this call's loser of a race too).
func BindInstance(ctx context.Context, db *gorm.DB, instance string) (string, error) {
	err := db.WithContext(ctx).Exec(`UPDATE sync_state SET clerk_instance_id = ? WHERE id = 1 AND clerk_instance_id = ''`,
		instance).Error
	if err != nil {
		return "", err
	}
	return BoundInstance(ctx, db)
}

// RebindInstance makes the database mirror instance, whatever it mirrored
// before, and returns what that was ("" for none).
func RebindInstance(ctx context.Context, db *gorm.DB, instance string) (string, error) {
	var before string
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if before, err = BoundInstance(ctx, tx); err != nil {
			return err
		}
		return tx.Exec(`UPDATE sync_state SET clerk_instance_id = ? WHERE id = 1`, instance).Error
	})
	return before, err
}

// InstanceMismatchError says that CLERK_SECRET_KEY belongs to another Clerk
// instance than the one the database mirrors.
type InstanceMismatchError struct {
	Bound, Key string
}

func (e *InstanceMismatchError) Error() string {
	return fmt.Sprintf("CLERK_SECRET_KEY belongs to Clerk instance %s, but this database mirrors %s: use a key of %s, "+
		"or make this database mirror %s on purpose with 'usersync backfill --rebind'", e.Key, e.Bound, e.Bound, e.Key)
}

// GuardInstance binds the database to keyInstance, the instance of
// CLERK_SECRET_KEY, if it mirrors none yet, and fails with an
// *InstanceMismatchError if it mirrors another.
func GuardInstance(ctx context.Context, db *gorm.DB, keyInstance string) error {
	bound, err := BindInstance(ctx, db, keyInstance)
	if err != nil {
		return fmt.Errorf("record the Clerk instance: %w", err)
	}
	if bound != keyInstance {
		return &InstanceMismatchError{Bound: bound, Key: keyInstance}
	}
	return nil
}

// RecordEvent records a delivery that applies nothing, with its outcome
// (a foreign instance's event). A redelivery of the same message keeps the
// first row.
func RecordEvent(ctx context.Context, db *gorm.DB, ev Event, outcome EventOutcome) error {
	var userID *string
	if ev.UserID != "" {
		userID = &ev.UserID
	}
	return db.WithContext(ctx).Exec(`INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (svix_id) DO NOTHING`, ev.SvixID, ev.Type, userID, string(outcome), now()).Error
}

// liveTables are the tables CountLive counts, by the names backfill uses.
var liveTables = map[string]string{
	"users": "users", "organizations": "organizations", "memberships": "organization_memberships",
}

// CountLive counts a table's live rows (users, organizations or
// memberships): the base of the prune cap.
func CountLive(ctx context.Context, db *gorm.DB, table string) (int64, error) {
	name, ok := liveTables[table]
	if !ok {
		return 0, fmt.Errorf("count live rows: unknown table %q", table)
	}
	var n int64
	err := db.WithContext(ctx).Raw(`SELECT count(*) FROM ` + name + ` WHERE deleted_at IS NULL`).Scan(&n).Error
	return n, err
}
