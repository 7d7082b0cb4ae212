package models

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/gorm"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// columnTypes spells the few types the two databases name differently; the
// migrations write them as $TIMESTAMP and $JSON.
var columnTypes = map[Dialect]*strings.Replacer{
	Postgres: strings.NewReplacer("$TIMESTAMP", "TIMESTAMPTZ", "$JSON", "JSONB"),
	// The SQLite driver turns a column declared TIMESTAMP back into time.Time.
	SQLite: strings.NewReplacer("$TIMESTAMP", "TIMESTAMP", "$JSON", "TEXT"),
}

// Migrate applies every pending migration in models/migrations, in version
// order, each in its own transaction. On Postgres a lock row in goose_lock
// keeps replicas that start together from migrating at the same time. It is
// a table row, not a session advisory lock, because through a
// transaction-mode pooler a session lock is taken on one server connection
// and released (or leaked) on another; a holder that dies loses it when its
// lease runs out. With nothing pending no lock is taken, so a runtime role
// that may only read goose_db_version can start.
func Migrate(ctx context.Context, db *gorm.DB, log *slog.Logger) error {
	provider, err := newProvider(db, log)
	if err != nil {
		return err
	}
	pending, err := provider.HasPending(ctx)
	if err == nil && !pending {
		return nil
	}
	if denied(err) {
		var role string
		db.WithContext(ctx).Raw("SELECT current_user").Scan(&role)
		return fmt.Errorf("role %q may not read goose_db_version, the migration log serve reads at start: "+
			"as the tables' owner, run GRANT SELECT ON goose_db_version TO %s; (or run usersync migrate as the owner)",
			role, role)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "duration", r.Duration.String())
	}
	return nil
}

// MigrationsPending reports whether Migrate has work to do, without doing
// it (for commands that must not write, such as a dry run).
func MigrationsPending(ctx context.Context, db *gorm.DB) (bool, error) {
	provider, err := newProvider(db, slog.New(slog.DiscardHandler))
	if err != nil {
		return false, err
	}
	return provider.HasPending(ctx)
}

// MigrationsPendingReadOnly is MigrationsPending without a write: goose's
// provider creates its version table when it is missing, so this reads the
// table itself, and a missing table means every migration is pending.
func MigrationsPendingReadOnly(ctx context.Context, db *gorm.DB) (bool, error) {
	dialect := DialectOf(db)
	var tables int64
	exists := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'"
	if dialect == Postgres {
		exists = "SELECT count(*) FROM (SELECT to_regclass('goose_db_version') AS t) r WHERE t IS NOT NULL"
	}
	if err := db.WithContext(ctx).Raw(exists).Scan(&tables).Error; err != nil {
		return false, err
	}
	if tables == 0 {
		return true, nil
	}
	var rows []struct {
		VersionID int64
		IsApplied bool
	}
	// goose appends a row per apply and per rollback: a version's last row says.
	if err := db.WithContext(ctx).Raw("SELECT version_id, is_applied FROM goose_db_version ORDER BY id").Scan(&rows).Error; err != nil {
		return false, err
	}
	applied := map[int64]bool{}
	for _, r := range rows {
		applied[r.VersionID] = r.IsApplied
	}
	migrations, err := loadMigrations(dialect)
	if err != nil {
		return false, err
	}
	for _, m := range migrations {
		if !applied[m.Version] {
			return true, nil
		}
	}
	return false, nil
}

func newProvider(db *gorm.DB, log *slog.Logger) (*goose.Provider, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	dialect := DialectOf(db)
	migrations, err := loadMigrations(dialect)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(migrations...),
		goose.WithSlog(log),
	}
	gooseDialect := goose.DialectSQLite3
	if dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		locker, err := lock.NewPostgresTableLocker(
			lock.WithTableLockTimeout(time.Second, 300), // a waiting replica checks every second, for 5 min
			lock.WithTableLogger(log),
		)
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, sqlDB, nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	return provider, nil
}

// loadMigrations reads NNNN_name.sql files and turns each into a goose
// migration with the dialect's column types filled in. A file named
// NNNN_name.postgres.sql or NNNN_name.sqlite.sql holds what only that
// database needs (a function; a table rebuilt because SQLite cannot
// alter a constraint): a version with no file for a dialect is applied there
// and does nothing, so both databases count the same versions.
func loadMigrations(dialect Dialect) ([]*goose.Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	stmts := map[int64]string{}
	for _, name := range names {
		version, err := strconv.ParseInt(strings.SplitN(path.Base(name), "_", 2)[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", name)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if _, ok := stmts[version]; !ok {
			stmts[version] = ""
		}
		if forDialect(name, dialect) {
			stmts[version] += columnTypes[dialect].Replace(string(body))
		}
	}
	var out []*goose.Migration
	for version, stmt := range stmts {
		up := &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			if stmt == "" {
				return nil
			}
			_, err := tx.ExecContext(ctx, stmt)
			return err
		}}
		out = append(out, goose.NewGoMigration(version, up, nil))
	}
	return out, nil
}

// forDialect reports whether a migration file applies to dialect: files
// named for one database apply only there.
func forDialect(name string, dialect Dialect) bool {
	switch {
	case strings.HasSuffix(name, ".postgres.sql"):
		return dialect == Postgres
	case strings.HasSuffix(name, ".sqlite.sql"):
		return dialect == SQLite
	}
	return true
}

// denied reports whether Postgres refused a statement for lack of a grant.
func denied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501" // insufficient_privilege
}
