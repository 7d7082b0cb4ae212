package models

import (
	"context"
	"fmt"
	"strings"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database behind a *gorm.DB.
type Dialect string

// The two supported databases.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// sqliteParams make the embedded database safe for concurrent writers: WAL lets
// readers run beside the writer, BEGIN IMMEDIATE takes the write lock up front
// (so two read-then-write transactions cannot deadlock on the upgrade), and
// busy_timeout makes a waiting writer queue instead of failing at once, and
// synchronous(FULL) makes a commit survive power loss (rule 6).
// (No _time_format: glebarez/go-sqlite v1.21 stops reading parameters after
// it, which would silently drop _txlock.)
const sqliteParams = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_txlock=immediate"

// Open connects to the database. dsn is a Postgres URL for Postgres and a file
// path (optionally with SQLite URI parameters) for SQLite.
func Open(ctx context.Context, dialect Dialect, dsn string) (*gorm.DB, error) {
	cfg := &gorm.Config{
		SkipDefaultTransaction: true, // the upsert manages its own transactions
		TranslateError:         true,
		Logger:                 logger.Discard,
	}
	var dialector gorm.Dialector
	switch dialect {
	case Postgres:
		dialector = postgres.Open(dsn)
	case SQLite:
		if err := privateSQLiteFiles(dsn); err != nil {
			return nil, err
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dialector = sqlite.Open(dsn + sep + sqliteParams)
	default:
		return nil, fmt.Errorf("unknown database dialect %q", dialect)
	}
	db, err := gorm.Open(dialector, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if dialect == SQLite {
		// One writer at a time anyway; a few connections let reads run beside it.
		sqlDB.SetMaxOpenConns(4)
	} else {
		sqlDB.SetMaxOpenConns(16)
		sqlDB.SetMaxIdleConns(16)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, nil
}

// DialectOf reports which database db talks to.
func DialectOf(db *gorm.DB) Dialect {
	if db.Dialector.Name() == "postgres" {
		return Postgres
	}
	return SQLite
}

// Ping checks that the database answers.
func Ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the connection pool.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
