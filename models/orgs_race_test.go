package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// A membership deletion whose payload names no organization or user locks
// only the membership; an update of the same membership waits for it and
// must not make it live again (rule 9).
func TestDeletedMembershipStaysDeletedUnderARacingUpdate(t *testing.T) {
	db := modelstest.New(t, models.Postgres)
	ctx := context.Background()
	m := memSnap("orgmem_1", "org_1", "user_1", 1, 10, "org:member")
	if _, err := models.Apply(ctx, db, models.MembershipChanges(models.ApplyMembership, m), models.SourceWebhook); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	deleted := make(chan error, 1)
	go func() {
		out, err := models.ApplyHolding(ctx, db, models.MembershipChanges(models.DeleteMembership,
			models.MembershipSnapshot{ID: "orgmem_1"}), models.SourceWebhook, held, release)
		if err == nil && out[0] != models.Deleted {
			err = fmt.Errorf("deletion: %v, want deleted", out[0])
		}
		deleted <- err
	}()
	<-held
	done := make(chan error, 1)
	go func() {
		update := memSnap("orgmem_1", "org_1", "user_1", 1, 20, "org:admin")
		_, err := models.Apply(ctx, db, models.MembershipChanges(models.ApplyMembership, update), models.SourceWebhook)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the update waits on the membership's lock
	close(release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got models.Membership
	if err := db.First(&got, "id = ?", "orgmem_1").Error; err != nil {
		t.Fatal(err)
	}
	if got.DeletedAt == nil || got.Role != "org:member" {
		t.Errorf("membership after a deletion and a racing update: deleted=%v role=%q, want a tombstone as deleted",
			got.DeletedAt != nil, got.Role)
	}
}

// A prune larger than one statement can carry is applied in chunks: every
// listed membership becomes a tombstone and the count says so.
func TestTombstoneManyMemberships(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		var changes []models.Change
		var ids []string
		for i := range 1200 {
			id := fmt.Sprintf("orgmem_%04d", i)
			m := memSnap(id, fmt.Sprintf("org_%d", i%7), fmt.Sprintf("user_%04d", i), 1, 10, "org:member")
			changes = append(changes, models.Change{Kind: models.ApplyMembership, Membership: m})
			ids = append(ids, id)
		}
		if _, err := models.Apply(ctx, db, changes, models.SourceBackfill); err != nil {
			t.Fatal(err)
		}
		n, err := models.TombstoneMemberships(ctx, db, ids, models.SourceBackfill)
		if err != nil || n != 1200 {
			t.Fatalf("TombstoneMemberships = %d, %v; want 1200, nil", n, err)
		}
		var live int64
		db.Model(&models.Membership{}).Where("deleted_at IS NULL").Count(&live)
		if live != 0 {
			t.Errorf("%d memberships still live", live)
		}
	})
}
