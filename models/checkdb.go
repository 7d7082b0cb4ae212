package models

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// What `usersync check` asks the database beyond what serve asks it.

// ErrMigrationLogDenied means the role may not read goose_db_version, the
// migration log serve reads at start.
var ErrMigrationLogDenied = errors.New("permission denied for goose_db_version")

// SchemaPending is MigrationsPendingReadOnly, with a role refused the
// migration log (insufficient_privilege) told apart as ErrMigrationLogDenied.
func SchemaPending(ctx context.Context, db *gorm.DB) (bool, error) {
	pending, err := MigrationsPendingReadOnly(ctx, db)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return false, fmt.Errorf("%w: %w", ErrMigrationLogDenied, err)
	}
	return pending, err
}

// CurrentRole is the Postgres role the connection acts as.
func CurrentRole(ctx context.Context, db *gorm.DB) (string, error) {
	var role string
	err := db.WithContext(ctx).Raw("SELECT current_user").Scan(&role).Error
	return role, err
}

// SQLiteQueryOnly reports whether a SQLite connection refuses writes (a
// query_only pragma in its DSN).
func SQLiteQueryOnly(ctx context.Context, db *gorm.DB) (bool, error) {
	var queryOnly bool
	err := db.WithContext(ctx).Raw("PRAGMA query_only").Scan(&queryOnly).Error
	return queryOnly, err
}
