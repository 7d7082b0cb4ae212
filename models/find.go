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

// The reads by id, built once: FindProfile is the read behind every fresh
// login-time sync, so neither it nor FindUser goes through GORM's reflection.
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

// FindProfiles is FindProfile for many ids in one query: the rows found,
// by id (an id without a row is absent).
func FindProfiles(ctx context.Context, db *gorm.DB, ids []string) (map[string]User, error) {
	dialect := DialectOf(db)
	rows, err := db.Statement.ConnPool.QueryContext(ctx, findProfilesSQL[dialect], lookupArgs(dialect, listArg(dialect, ids))...)
	if err != nil {
		return nil, fmt.Errorf("find %d users: %w", len(ids), err)
	}
	defer rows.Close()
	found := make(map[string]User, len(ids))
	for rows.Next() {
		u, err := scanUser(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("find users: %w", err)
		}
		found[u.ID] = u
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find %d users: %w", len(ids), err)
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
