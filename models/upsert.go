package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ApplySnapshot applies a Clerk user snapshot to the users table in one
// transaction, following contract rules 1–7, and reports what it did.
func ApplySnapshot(ctx context.Context, db *gorm.DB, s Snapshot, src Source) (Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB) (Outcome, error) {
		return applySnapshot(tx, s, src, now())
	})
}

// Tombstone records that Clerk deleted the user (rule 5): the row keeps its id
// and tier, loses its personal data, and no later snapshot changes it. An
// unknown id becomes a tombstone too, so a late user.created cannot revive it.
// The user's live memberships become tombstones in the same transaction (rule 9).
func Tombstone(ctx context.Context, db *gorm.DB, id string, src Source) (Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB) (Outcome, error) {
		return tombstone(tx, id, src, now())
	})
}

// now is the row time: UTC, cut to the microseconds Postgres keeps, so a value
// read back equals the value written on both databases.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// applySnapshot is the one upsert. It reads the user's row and the live holder
// of the snapshot's email under lock, decides in Go, and writes only when the
// snapshot is newer (rule 7). The conflict clause repeats the ordering guard so
// a row inserted concurrently is never overwritten by an older snapshot.
func applySnapshot(tx *gorm.DB, s Snapshot, src Source, at time.Time) (Outcome, error) {
	s = s.normalized()
	own, holder, err := lockRows(tx, s)
	if err != nil {
		return "", err
	}
	if v := verdict(own, s); v != "" {
		return v, nil
	}
	email := s.Email
	if holder != nil {
		if outranks(*holder, s) {
			email = nil
		} else if err := releaseEmail(tx, holder.ID, at); err != nil {
			return "", err
		}
	}
	written, err := upsertRows(tx, []User{s.row(email, src, at)}, s.Tier != "", map[string]bool{s.ID: own != nil})
	if err != nil {
		return "", err
	}
	outcome, ok := written[s.ID]
	if !ok {
		// A concurrent transaction inserted a newer row after our read; start
		// over so anything this attempt wrote is rolled back.
		return "", errRaced
	}
	return outcome, nil
}

// upsertRows writes rows with the one upsert statement and reports, for
// each row it wrote, whether it inserted (Created) or updated it; rows it
// did not write (not newer, or tombstones) are absent. On Postgres the
// statement itself says so (RETURNING xmax = 0), since a row may appear
// between a read and the write. SQLite has one writer at a time (BEGIN
// IMMEDIATE), so there existed, the rows read before, still holds.
func upsertRows(tx *gorm.DB, rows []User, withTier bool, existed map[string]bool) (map[string]Outcome, error) {
	written := make(map[string]Outcome, len(rows))
	if DialectOf(tx) == Postgres {
		stmt := tx.Session(&gorm.Session{DryRun: true}).Clauses(upsertClause(withTier)).Create(&rows).Statement
		return written, scanWritten(tx, stmt.SQL.String()+" RETURNING id, (xmax = 0)", stmt.Vars, written)
	}
	res := tx.Clauses(upsertClause(withTier)).Create(&rows)
	if res.Error != nil {
		return nil, fmt.Errorf("upsert %d users: %w", len(rows), res.Error)
	}
	if res.RowsAffected != int64(len(rows)) {
		return nil, errRaced
	}
	for _, r := range rows {
		written[r.ID] = appliedOutcome(existed[r.ID])
	}
	return written, nil
}

// scanWritten runs an upsert ... RETURNING id, inserted and notes each row.
func scanWritten(tx *gorm.DB, sql string, vars []any, written map[string]Outcome) error {
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, sql, vars...)
	if err != nil {
		return fmt.Errorf("upsert users: %w", translate(tx, err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var inserted bool
		if err := rows.Scan(&id, &inserted); err != nil {
			return err
		}
		written[id] = Updated
		if inserted {
			written[id] = Created
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("upsert users: %w", translate(tx, err))
	}
	return nil
}

// translate maps a driver error to GORM's (gorm.ErrDuplicatedKey, ...), as
// GORM does for statements it runs itself.
func translate(tx *gorm.DB, err error) error {
	if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}

// verdict is rules 1 and 5 for one snapshot against its row: Gone, Unchanged
// or Stale when the snapshot must not be applied, "" when it must.
func verdict(own *User, s Snapshot) Outcome {
	switch {
	case own == nil:
		return ""
	case own.Deleted():
		return Gone
	case s.UpdatedAt == own.ClerkUpdatedAt:
		return Unchanged
	case s.UpdatedAt < own.ClerkUpdatedAt:
		return Stale
	}
	return ""
}

func appliedOutcome(existed bool) Outcome {
	if existed {
		return Updated
	}
	return Created
}

// lockRows reads the user's own row and the live row holding the snapshot's
// email, locking both on Postgres (SQLite transactions already hold the write
// lock from BEGIN IMMEDIATE).
func lockRows(tx *gorm.DB, s Snapshot) (own, holder *User, err error) {
	q := tx.Select("id", "email", "clerk_updated_at", "deleted_at").Where("id = ?", s.ID)
	if s.Email != nil {
		q = q.Or("email = ? AND deleted_at IS NULL", *s.Email)
	}
	if DialectOf(tx) == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var rows []User
	if err := q.Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("read user %s: %w", s.ID, err)
	}
	for i := range rows {
		if rows[i].ID == s.ID {
			own = &rows[i]
		} else {
			holder = &rows[i]
		}
	}
	return own, holder, nil
}

// releaseEmail takes the address away from a row that lost it to a newer
// snapshot of another user (rule 3).
func releaseEmail(tx *gorm.DB, id string, at time.Time) error {
	err := tx.Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"email": nil, "email_verified": false, "updated_at": at}).Error
	if err != nil {
		return fmt.Errorf("release email of user %s: %w", id, err)
	}
	return nil
}

// snapshotColumns are the columns a newer snapshot overwrites. tier is added
// only when the snapshot names one (rule 4); created_at never changes.
var snapshotColumns = []string{
	"email", "first_name", "last_name", "image_url", "username", "phone_number",
	"email_verified", "raw_json", "clerk_updated_at", "updated_at", "sync_source", "synced_at",
}

func upsertClause(withTier bool) clause.OnConflict {
	cols := snapshotColumns
	if withTier {
		cols = append(cols[:len(cols):len(cols)], "tier")
	}
	return clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns(cols),
		// Qualified names: Postgres rejects a bare clerk_updated_at here as ambiguous.
		Where: clause.Where{Exprs: []clause.Expression{clause.Expr{
			SQL: "users.clerk_updated_at < excluded.clerk_updated_at AND users.deleted_at IS NULL",
		}}},
	}
}

// tombstoneClause clears personal data on an existing live row.
var tombstoneClause = clause.OnConflict{
	Columns: []clause.Column{{Name: "id"}},
	DoUpdates: append(clause.Set{
		{Column: clause.Column{Name: "email"}, Value: nil},
		{Column: clause.Column{Name: "first_name"}, Value: nil},
		{Column: clause.Column{Name: "last_name"}, Value: nil},
		{Column: clause.Column{Name: "image_url"}, Value: nil},
		{Column: clause.Column{Name: "username"}, Value: nil},
		{Column: clause.Column{Name: "phone_number"}, Value: nil},
		{Column: clause.Column{Name: "raw_json"}, Value: nil},
		{Column: clause.Column{Name: "email_verified"}, Value: false},
	}, clause.AssignmentColumns([]string{"deleted_at", "updated_at", "sync_source"})...),
	Where: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "users.deleted_at IS NULL"}}},
}

func tombstone(tx *gorm.DB, id string, src Source, at time.Time) (Outcome, error) {
	row := User{
		ID:         id,
		Tier:       TierFree,
		CreatedAt:  at,
		UpdatedAt:  at,
		DeletedAt:  &at,
		SyncSource: src,
	}
	res := tx.Clauses(tombstoneClause).Create(&row)
	if res.Error != nil {
		return "", fmt.Errorf("tombstone user %s: %w", id, res.Error)
	}
	// Rule 9: the user's live memberships go with it (also when the row was
	// already a tombstone, so a membership that raced the first deletion
	// is caught by the redelivery).
	if err := tombstoneUserMemberships(tx, id, src, at); err != nil {
		return "", err
	}
	if res.RowsAffected == 0 {
		return Gone, nil
	}
	return Deleted, nil
}

// FindProfile reads one row without raw_json (which can be kilobytes),
// tombstones included. It is the read behind every fresh login-time sync,
// so it scans the columns itself rather than through GORM's reflection.
func FindProfile(ctx context.Context, db *gorm.DB, id string) (User, error) {
	u := User{ID: id}
	row := db.WithContext(ctx).Raw(`SELECT email, first_name, last_name, image_url, username, phone_number, tier,
		clerk_updated_at, created_at, updated_at, deleted_at, sync_source, synced_at FROM users WHERE id = ?`, id).Row()
	err := row.Scan(&u.Email, &u.FirstName, &u.LastName, &u.ImageURL, &u.Username, &u.PhoneNumber, &u.Tier,
		&u.ClerkUpdatedAt, &u.CreatedAt, &u.UpdatedAt, &u.DeletedAt, &u.SyncSource, &u.SyncedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("find user %s: %w", id, err)
	}
	return u, nil
}

// FindUser reads one row, tombstones included.
func FindUser(ctx context.Context, db *gorm.DB, id string) (User, error) {
	var u User
	err := db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if err == gorm.ErrRecordNotFound {
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
	const page = 5000
	after := ""
	for {
		var ids []string
		err := db.WithContext(ctx).Model(&User{}).Where("deleted_at IS NULL AND id > ?", after).
			Order("id").Limit(page).Pluck("id", &ids).Error
		if err != nil {
			return fmt.Errorf("list live users: %w", err)
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < page {
			return nil
		}
		after = ids[len(ids)-1]
	}
}
