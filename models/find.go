package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// profileColumns are a row's columns without raw_json (which can be
// kilobytes), in the order scanUser reads them.
const profileColumns = `id, email, first_name, last_name, image_url, username, phone_number, tier,
	clerk_updated_at, created_at, updated_at, deleted_at, sync_source, email_verified, synced_at`

// The reads of one row by id, built once, without GORM's reflection. The
// login-time sync reads through FindProfiles, which batches its reads.
var (
	findProfileSQL = map[Dialect]string{
		Postgres: `SELECT ` + profileColumns + `, NULL FROM users WHERE id = $1`,
		SQLite:   `SELECT ` + profileColumns + `, NULL FROM users WHERE id = ?1`,
	}
	findUserSQL = map[Dialect]string{
		Postgres: `SELECT ` + profileColumns + `, raw_json::text FROM users WHERE id = $1`,
		SQLite:   `SELECT ` + profileColumns + `, raw_json FROM users WHERE id = ?1`,
	}
)

// FindProfile reads one row without raw_json, tombstones included.
func FindProfile(ctx context.Context, db *gorm.DB, id string) (User, error) {
	return findUser(ctx, db, findProfileSQL, id)
}

// FindUser reads one row, tombstones included.
func FindUser(ctx context.Context, db *gorm.DB, id string) (User, error) {
	return findUser(ctx, db, findUserSQL, id)
}

func findUser(ctx context.Context, db *gorm.DB, query map[Dialect]string, id string) (User, error) {
	u, err := scanUser(db.Statement.ConnPool.QueryRowContext(ctx, query[DialectOf(db)], id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("find user %s: %w", id, err)
	}
	return u, nil
}

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
// without a row is absent). On Postgres the rows and the memberships are
// read in one round trip; the organizations, when there are memberships,
// in a second.
func FindProfiles(ctx context.Context, db *gorm.DB, ids []string) (map[string]Profile, error) {
	dialect := DialectOf(db)
	found := make(map[string]Profile, len(ids))
	var r round
	r.add(statement{
		name: fmt.Sprintf("find %d users", len(ids)), sql: findProfilesSQL[dialect],
		args: []any{listArg(dialect, ids)},
		read: eachRow(func(rs rows) error {
			u, err := scanUser(rs.Scan)
			if err != nil {
				return err
			}
			found[u.ID] = Profile{User: u, Organizations: []UserOrganization{}}
			return nil
		}),
	})
	ms := readMemberships(&r, dialect, ids)
	if err := readRound(ctx, db, r); err != nil {
		return nil, err
	}
	orgs, err := organizationsOf(ctx, db, *ms)
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
