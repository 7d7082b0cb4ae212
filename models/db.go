package models

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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

// DefaultMaxConns is the Postgres pool size when Options leave it unset.
const DefaultMaxConns = 10

// Options tune a connection pool; the zero value is fine.
type Options struct {
	MaxConns int          // most Postgres connections open at once; 0 means DefaultMaxConns
	Log      *slog.Logger // where refused connections are reported; nil discards
}

// Open connects to the database. dsn is a Postgres URL for Postgres and a file
// path (optionally with SQLite URI parameters) for SQLite.
func Open(ctx context.Context, dialect Dialect, dsn string) (*gorm.DB, error) {
	return OpenWith(ctx, dialect, dsn, Options{})
}

// OpenWith is Open with pool options.
func OpenWith(ctx context.Context, dialect Dialect, dsn string, opts Options) (*gorm.DB, error) {
	cfg := &gorm.Config{
		SkipDefaultTransaction: true, // the upsert manages its own transactions
		TranslateError:         true,
		Logger:                 logger.Discard,
	}
	var dialector gorm.Dialector
	switch dialect {
	case Postgres:
		pool, err := openPostgresPool(dsn, opts)
		if err != nil {
			return nil, err
		}
		dialector = postgres.New(postgres.Config{Conn: pool})
	case SQLite:
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
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, nil
}

// openPostgresPool builds the database/sql pool for a Postgres URL so that it
// works the same directly and through a transaction-mode pooler (PgBouncer,
// Neon's -pooler, Supabase's 6543), where consecutive transactions may run on
// different server connections. pgx's default caches named prepared
// statements per connection, which such a pooler hands to other clients
// ("prepared statement already exists / does not exist"); cache_describe
// caches only the statement's types and sends every query as an unnamed
// statement in one round trip, so nothing outlives a transaction. A URL that
// names default_query_exec_mode keeps its own choice.
func openPostgresPool(dsn string, opts Options) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse Postgres URL: %w", err)
	}
	if !strings.Contains(dsn, "default_query_exec_mode") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool := sql.OpenDB(newBackoffConnector(stdlib.GetConnector(*cfg), maxConns, log))
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	// Poolers and hosted Postgres close idle connections on their side;
	// dropping ours first avoids a failed query on a dead one.
	pool.SetConnMaxIdleTime(5 * time.Minute)
	return pool, nil
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
