package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"gorm.io/gorm"

	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
)

// openDB applies pending migrations, opens the pool the service runs on and
// checks that its role may use the tables: a role without grants fails the
// start with one line naming them, not every webhook with a 503.
func openDB(ctx context.Context, cfg config.Config, log *slog.Logger) (*gorm.DB, error) {
	if err := makeSQLiteDir(cfg.Database); err != nil {
		return nil, err
	}
	if cfg.Database.MigrateDSN != "" {
		if err := migrateSchema(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	db, err := connect(ctx, cfg.Database, cfg.Database.DSN, log)
	if err != nil {
		return nil, err
	}
	if cfg.Database.MigrateDSN == "" {
		err = models.Migrate(ctx, db, log)
	}
	if err == nil {
		err = models.CheckAccess(ctx, db)
	}
	if err != nil {
		models.Close(db)
		return nil, err
	}
	return db, nil
}

// migrateSchema applies pending migrations over DATABASE_URL_UNPOOLED when
// it is set (a direct connection), else over DATABASE_URL.
func migrateSchema(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	db, err := connect(ctx, cfg.Database, cfg.Database.MigrationDSN(), log)
	if err != nil {
		return err
	}
	defer models.Close(db)
	return models.Migrate(ctx, db, log)
}

func connect(ctx context.Context, d config.Database, dsn string, log *slog.Logger) (*gorm.DB, error) {
	return models.Open(ctx, d.Dialect, dsn, models.Options{MaxConns: d.MaxConns, Log: log})
}

// makeSQLiteDir creates the directory of the SQLite file, if it is one.
func makeSQLiteDir(d config.Database) error {
	if path := d.SQLitePath(); path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create directory for %s: %w", path, err)
		}
	}
	return nil
}
