package models

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
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
	// ReadOnly opens the database for reading only, creating and changing
	// nothing (usersync check): SQLite with mode=ro and no chmod of its
	// files; Postgres with default_transaction_read_only on a direct
	// connection (a transaction pooler may refuse that start-up parameter).
	ReadOnly bool
}

// Open connects to the database. dsn is a Postgres URL for Postgres and a
// file path (optionally with SQLite URI parameters) for SQLite.
func Open(ctx context.Context, dialect Dialect, dsn string, opts Options) (*gorm.DB, error) {
	cfg := &gorm.Config{
		SkipDefaultTransaction: true, // the upsert manages its own transactions
		TranslateError:         true,
		Logger:                 logger.Discard,
	}
	var dialector gorm.Dialector
	switch dialect {
	case Postgres:
		pool, err := openPostgresPool(ctx, dsn, opts)
		if err != nil {
			return nil, err
		}
		dialector = postgres.New(postgres.Config{Conn: pool})
	case SQLite:
		if opts.ReadOnly {
			dialector = sqlite.Open(readOnlySQLite(dsn))
			break
		}
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
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, nil
}

// readOnlySQLite is the DSN that opens an existing SQLite file for reading
// only: as a URI (SQLite reads mode=ro only in one), without the WAL pragma,
// which would write to a file not yet in WAL mode.
func readOnlySQLite(dsn string) string {
	path, query, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	u := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(10000)"
	if query != "" {
		u += "&" + query
	}
	return u
}

// openPostgresPool builds the database/sql pool for a Postgres URL so that it
// works the same directly and through a transaction-mode pooler (PgBouncer,
// Neon's -pooler, Supabase's 6543), where consecutive transactions may run on
// different server connections. pgx's default mode caches named prepared
// statements per connection, which such a pooler hands to other clients
// ("prepared statement already exists / does not exist"). So the pool uses
// it only on a connection found to be direct (see DetectPooler), where it
// saves the server a parse and plan per statement; otherwise cache_describe,
// which caches only the statement's types and sends every query as an
// unnamed statement in one round trip, so nothing outlives a transaction.
// A URL that names default_query_exec_mode keeps its own choice.
func openPostgresPool(ctx context.Context, dsn string, opts Options) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse Postgres URL: %w", err)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !strings.Contains(dsn, "default_query_exec_mode") {
		pooled, err := detectPooler(ctx, cfg) // also refuses a server older than MinServerVersion
		if err != nil {
			return nil, fmt.Errorf("connect to postgres database: %w", err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
		if pooled {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		}
		log.Debug("postgres connection", "pooled", pooled, "query_exec_mode", cfg.DefaultQueryExecMode.String())
		if opts.ReadOnly && !pooled {
			cfg.RuntimeParams["default_transaction_read_only"] = "on"
		}
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	pool := sql.OpenDB(newBackoffConnector(stdlib.GetConnector(*cfg), maxConns, log))
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	// Poolers and hosted Postgres close idle connections on their side;
	// dropping ours first avoids a failed query on a dead one.
	pool.SetConnMaxIdleTime(5 * time.Minute)
	return pool, nil
}

// DetectPooler reports whether the Postgres URL reaches the server through
// a connection pooler. A pooler answers the start-up with a cancel key of its
// own (it must route cancel requests to whichever server connection a client
// has at the time), so the process id it announces is not the id of the
// backend that runs our queries; straight to Postgres the two are equal.
// Unlike guessing from host names and ports, this also finds a PgBouncer on
// port 5432.
func DetectPooler(ctx context.Context, dsn string) (bool, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return false, fmt.Errorf("parse Postgres URL: %w", err)
	}
	return detectPooler(ctx, cfg)
}

func detectPooler(ctx context.Context, cfg *pgx.ConnConfig) (bool, error) {
	probe := cfg.Copy()
	probe.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // nothing left on the server
	conn, err := pgx.ConnectConfig(ctx, probe)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend uint32
	var version int
	err = conn.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('server_version_num')::int").Scan(&backend, &version)
	if err != nil {
		return false, err
	}
	if err := checkServerVersion(version); err != nil {
		return false, err
	}
	return conn.PgConn().PID() != backend, nil
}

// MinServerVersion is the oldest Postgres usersync runs on (server_version_num):
// 12 brought plan_cache_mode, which the write path's transactions set (planSettings).
const MinServerVersion = 120000

func checkServerVersion(num int) error {
	if num < MinServerVersion {
		return fmt.Errorf("the server runs Postgres %d: usersync needs Postgres 12 or later", num/10000)
	}
	return nil
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

// Analyze refreshes the planner's statistics of the synced tables, after an
// import changed their size. On Postgres a role that does not own them is
// skipped with a warning, not refused.
func Analyze(ctx context.Context, db *gorm.DB) error {
	query := "ANALYZE users, organizations, organization_memberships"
	if DialectOf(db) == SQLite {
		query = "ANALYZE"
	}
	return db.WithContext(ctx).Exec(query).Error
}
