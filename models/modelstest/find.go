package modelstest

import (
	"context"
	"errors"
	"fmt"

	"github.com/usersync/usersync/models"
	"gorm.io/gorm"
)

const userColumns = `id, email, first_name, last_name, image_url, username, phone_number, tier,
	clerk_updated_at, created_at, updated_at, deleted_at, sync_source, email_verified, synced_at, `

// FindUser reads one users row, tombstones included; models.ErrNotFound
// when there is none.
func FindUser(ctx context.Context, db *gorm.DB, id string) (models.User, error) {
	var u models.User
	raw := "raw_json"
	if models.DialectOf(db) == models.Postgres {
		raw = "raw_json::text AS raw_json" // jsonb, read as text
	}
	err := db.WithContext(ctx).Select(userColumns+raw).Where("id = ?", id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, models.ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("find user %s: %w", id, err)
	}
	return u, nil
}

// FindProfile is FindUser without raw_json, as the login-time sync reads it.
func FindProfile(ctx context.Context, db *gorm.DB, id string) (models.User, error) {
	p, err := models.FindProfiles(ctx, db, []string{id})
	if err != nil {
		return models.User{}, err
	}
	u, ok := p[id]
	if !ok {
		return models.User{}, models.ErrNotFound
	}
	return u.User, nil
}

// FindUserOrganizations lists the live organizations a user is a live
// member of, in the order the memberships were created.
func FindUserOrganizations(ctx context.Context, db *gorm.DB, userID string) ([]models.UserOrganization, error) {
	orgs, err := models.FindOrganizationsOf(ctx, db, []string{userID})
	if err != nil {
		return nil, err
	}
	if orgs[userID] == nil {
		return []models.UserOrganization{}, nil
	}
	return orgs[userID], nil
}

// ProcessEvent processes one event as a batch of one.
func ProcessEvent(ctx context.Context, db *gorm.DB, ev models.Event) (models.EventResult, error) {
	res, err := models.ProcessEvents(ctx, db, []models.Event{ev})
	if err != nil {
		return models.EventResult{}, err
	}
	return res[0], nil
}

// UserChanges are the changes that apply snaps, in order.
func UserChanges(snaps []models.Snapshot) []models.Change {
	out := make([]models.Change, len(snaps))
	for i, s := range snaps {
		out[i] = models.UserChange(s)
	}
	return out
}
