package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersync/usersync/models"
)

// Database opens the configured database and pings it.
func (c *Checker) Database(ctx context.Context) Result {
	const name = "database"
	d := c.Cfg.Database
	if path := d.SQLitePath(); path != "" {
		file, _, _ := strings.Cut(path, "?")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			return fail(name, "SQLite file %s does not exist yet: run 'usersync migrate' (or start serve) in this directory, or set DATABASE_URL", file)
		}
	}
	// Read-only: check creates and changes nothing, not even on an empty database.
	db, err := models.Open(ctx, d.Dialect, d.DSN, models.Options{MaxConns: 2, ReadOnly: true})
	if err != nil {
		return fail(name, "%s: check DATABASE_URL (host, port, user, password, database name, sslmode)", oneLine(err))
	}
	c.db = db
	if d.Dialect == models.SQLite {
		return ok(name, "reachable: SQLite file %s", d.SQLitePath())
	}
	return ok(name, "reachable: Postgres at %s", hostPort(d.DSN))
}

// Schema reports whether every migration has been applied.
func (c *Checker) Schema(ctx context.Context) Result {
	const name = "schema"
	if c.db == nil {
		return Result{Name: name, Status: Skip, Detail: "the database is not reachable"}
	}
	pending, err := models.SchemaPending(ctx, c.db)
	switch {
	case errors.Is(err, models.ErrMigrationLogDenied):
		return fail(name, "the role may not read goose_db_version, the migration log serve reads at start: "+
			"GRANT SELECT ON goose_db_version TO the service's role (as its owner)")
	case err != nil:
		return fail(name, "cannot read the schema version (%s): run 'usersync migrate'", oneLine(err))
	case pending:
		return fail(name, "migrations are pending: run 'usersync migrate' (serve also applies them at start)")
	}
	return ok(name, "current: every migration is applied")
}

// Grants reports whether the service's role may read and write its tables.
func (c *Checker) Grants(ctx context.Context) Result {
	const name = "grants"
	if c.db == nil {
		return Result{Name: name, Status: Skip, Detail: "the database is not reachable"}
	}
	if models.DialectOf(c.db) == models.SQLite {
		return c.sqliteWritable(ctx)
	}
	role, err := models.CurrentRole(ctx, c.db)
	if err != nil {
		return fail(name, "cannot ask for the role's privileges: %s", oneLine(err))
	}
	if err := models.CheckAccess(ctx, c.db); err != nil {
		return fail(name, "%s", oneLine(err))
	}
	return ok(name, "role %s may read and write %s", role, joinAnd(Tables))
}

// Tables are the tables the service reads and writes.
var Tables = models.RuntimeTables()

// sqliteWritable asks the kernel whether this user may write the SQLite
// file and create its -wal and -shm beside it, without writing.
func (c *Checker) sqliteWritable(ctx context.Context) Result {
	const name = "grants"
	if queryOnly, err := models.SQLiteQueryOnly(ctx, c.db); err != nil || queryOnly {
		return fail(name, "cannot write the SQLite file %s (query_only): remove the query_only pragma from DATABASE_URL", c.Cfg.Database.SQLitePath())
	}
	path, _, _ := strings.Cut(c.Cfg.Database.SQLitePath(), "?")
	for _, p := range []string{path, filepath.Dir(path)} {
		if err := writable(p); err != nil {
			return fail(name, "cannot write %s (%s): make the SQLite file and its directory writable by this user", p, oneLine(err))
		}
	}
	return ok(name, "the SQLite file is writable")
}

// Connection says whether DATABASE_URL reaches Postgres through a pooler
// (as the service detects it) and whether the settings fit.
func (c *Checker) Connection(ctx context.Context) Result {
	const name = "connection"
	d := c.Cfg.Database
	if d.Dialect == models.SQLite {
		return ok(name, "embedded SQLite: one instance only; use Postgres to run several replicas")
	}
	if c.db == nil {
		return Result{Name: name, Status: Skip, Detail: "the database is not reachable"}
	}
	pooled, err := models.DetectPooler(ctx, d.DSN)
	if err != nil {
		return fail(name, "cannot connect: %s", oneLine(err))
	}
	if !pooled {
		return ok(name, "direct to Postgres; %d connections per instance (DATABASE_MAX_CONNS)", d.MaxConns)
	}
	via := "a pooler"
	if p := Pooler(d.DSN); p != "" {
		via = p
	}
	if strings.Contains(d.DSN, "default_query_exec_mode=cache_statement") {
		return fail(name, "through %s, but DATABASE_URL asks for default_query_exec_mode=cache_statement: "+
			"named prepared statements break on a transaction pooler; remove the parameter", via)
	}
	migrations := "migrations run through it too (set DATABASE_URL_UNPOOLED to run them over a direct URL)"
	if d.MigrateDSN != "" {
		migrations = "migrations use DATABASE_URL_UNPOOLED"
	}
	return ok(name, "through %s: supported as is; %s; %d connections per instance (DATABASE_MAX_CONNS)",
		via, migrations, d.MaxConns)
}

// Pooler names the connection pooler a Postgres URL points at, or "" when
// it looks like a direct connection.
func Pooler(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	host, port := u.Hostname(), u.Port()
	switch {
	case strings.HasSuffix(host, "pooler.supabase.com"):
		return "Supabase's pooler (" + host + ")"
	case strings.Contains(host, "-pooler"):
		return "Neon's pooled endpoint (" + host + ")"
	case port == "6543" || port == "6432":
		return "a PgBouncer-style pooler (port " + port + ")"
	case u.Query().Get("pgbouncer") == "true":
		return "PgBouncer (pgbouncer=true)"
	}
	return ""
}

func hostPort(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "(host from the connection string)"
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port) + u.Path
}

// oneLine flattens a driver error that spans lines.
func oneLine(err error) string { return strings.Join(strings.Fields(fmt.Sprint(err)), " ") }

// joinAnd lists names as "a, b and c".
func joinAnd(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
