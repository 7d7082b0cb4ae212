package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// profileColumns are a row's columns without raw_json (which can be
// kilobytes), in the order scanUser reads them.
const profileColumns = `id, email, first_name, last_name, image_url, username, phone_number, tier,
	clerk_updated_at, created_at, updated_at, deleted_at, sync_source, email_verified, synced_at`

// EachLiveUserID calls fn with the ids of live rows in id order, reading
// them a page at a time so millions of rows never sit in memory at once.
func EachLiveUserID(ctx context.Context, db *gorm.DB, fn func(id string) error) error {
	return eachLiveID(ctx, db.Model(&User{}), fn)
}

// findProfilesSQL reads many rows by id in one query (profileColumns).
var findProfilesSQL = map[Dialect]string{
	Postgres: `SELECT ` + profileColumns + `, NULL FROM users WHERE id = ANY($1::text[])`,
	SQLite:   `SELECT ` + profileColumns + `, NULL FROM users WHERE id IN (SELECT value FROM json_each(?1))`,
}

// Profile is what a login-time sync answers with: the user's row without
// raw_json (as FindProfile reads it) and the live organizations the user is
// a live member of (as FindUserOrganizations lists them).
type Profile struct {
	User
	Organizations []UserOrganization
}

// FindProfiles reads the profiles of many users at once, by id (an id
// without a row is absent).
func FindProfiles(ctx context.Context, db *gorm.DB, ids []string) (map[string]Profile, error) {
	dialect := DialectOf(db)
	found := make(map[string]Profile, len(ids))
	rows, err := db.Statement.ConnPool.QueryContext(ctx, findProfilesSQL[dialect], listArg(dialect, ids))
	if err != nil {
		return nil, fmt.Errorf("find %d users: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("find %d users: %w", len(ids), err)
		}
		found[u.ID] = Profile{User: u, Organizations: []UserOrganization{}}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find %d users: %w", len(ids), err)
	}
	orgs, err := FindOrganizationsOf(ctx, db, ids)
	if err != nil {
		return nil, err
	}
	for id, list := range orgs {
		if p, ok := found[id]; ok {
			p.Organizations = list
			found[id] = p
		}
	}
	return found, nil
}

func scanUser(scan func(dest ...any) error) (User, error) {
	var u User
	err := scan(&u.ID, &u.Email, &u.FirstName, &u.LastName, &u.ImageURL, &u.Username, &u.PhoneNumber,
		&u.Tier, &u.ClerkUpdatedAt, &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt, &u.SyncSource, &u.EmailVerified,
		&u.SyncedAt, &u.RawJSON)
	return u, err
}
