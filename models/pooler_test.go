package models_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// connections are the two ways users reach Postgres.
var connections = []struct {
	name string
	dsn  func(testing.TB) string
}{
	{"direct", func(t testing.TB) string { return modelstest.NewDSN(t, models.Postgres) }},
	{"pgbouncer", modelstest.PooledDSN},
}

func openPool(t testing.TB, dsn string) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), models.Postgres, dsn, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close(db) })
	return db
}

// The pooler under test really is in transaction mode: pgx's default
// (named prepared statements kept per connection) breaks on the second
// client, as it did for usersync before it chose its query mode. Without
// this, every other pooler test could pass against a pooler that pools
// nothing.
func TestPoolerIsTransactionMode(t *testing.T) {
	dsn := modelstest.PooledDSN(t) + "&default_query_exec_mode=cache_statement"
	var errs []error
	for range 3 {
		db := openPool(t, dsn)
		var n int
		errs = append(errs, db.Raw("SELECT count(*) FROM pg_class WHERE relname = ?", "users").Scan(&n).Error)
		models.Close(db)
	}
	var pgErr *pgconn.PgError
	if err := errors.Join(errs...); !errors.As(err, &pgErr) || (pgErr.Code != "42P05" && pgErr.Code != "26000") {
		t.Fatalf("named prepared statements across clients: err = %v, want 42P05 or 26000 from a transaction pooler", err)
	}
}

// Three instances migrating at once (three times over, with other clients
// busy on the same pooler so server connections change hands), then a
// restart (migrate again, twice): the schema is applied exactly once, every
// instance can write afterwards, and no advisory lock (or goose lock row)
// is left behind.
func TestConcurrentMigrateAndRestart(t *testing.T) {
	for _, conn := range connections {
		t.Run(conn.name, func(t *testing.T) {
			for trial := range 3 {
				dsn := conn.dsn(t)
				stop := busyClients(t, dsn)
				var wg sync.WaitGroup
				errs := make([]error, 3)
				for i := range errs {
					db := openPool(t, dsn)
					wg.Go(func() { errs[i] = models.Migrate(context.Background(), db, quiet) })
				}
				wg.Wait()
				stop()
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("trial %d: concurrent migrate: %v", trial, err)
				}
				wantMigratedOnce(t, openPool(t, dsn))
			}
			dsn := conn.dsn(t)
			for restart := range 3 {
				db := openPool(t, dsn)
				if err := models.Migrate(context.Background(), db, quiet); err != nil {
					t.Fatalf("migrate, start %d: %v", restart, err)
				}
				ev := upsertEvent(fmt.Sprintf("msg_restart_%d", restart), snap("user_r", int64(restart+1)))
				if res, err := modelstest.ProcessEvent(context.Background(), db, ev); err != nil || res.Outcome != models.EventApplied {
					t.Fatalf("event after start %d: %v %v", restart, res.Outcome, err)
				}
				models.Close(db)
			}
			wantMigratedOnce(t, openPool(t, dsn))
		})
	}
}

// busyClients keeps four other connections querying dsn until stop is called.
func busyClients(t *testing.T, dsn string) (stop func()) {
	db := openPool(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				db.WithContext(ctx).Exec("SELECT pg_sleep(0.002)")
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

func wantMigratedOnce(t *testing.T, db *gorm.DB) {
	t.Helper()
	var dup []int64
	if err := db.Raw(`SELECT version_id FROM goose_db_version GROUP BY version_id HAVING count(*) > 1`).
		Scan(&dup).Error; err != nil {
		t.Fatal(err)
	}
	if len(dup) > 0 {
		t.Errorf("migrations applied more than once: %v", dup)
	}
	var advisory, held int
	db.Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&advisory)
	db.Raw(`SELECT count(*) FROM goose_lock WHERE locked`).Scan(&held)
	if advisory != 0 || held != 0 {
		t.Errorf("locks left behind: %d advisory locks, %d goose_lock rows held", advisory, held)
	}
}

// A role that may read the schema version but write nothing is caught by
// CheckAccess, naming what to grant; after the documented grants it passes.
func TestCheckAccessNamesMissingGrants(t *testing.T) {
	for _, conn := range connections {
		t.Run(conn.name, func(t *testing.T) {
			dsn := conn.dsn(t)
			owner := openPool(t, dsn)
			if err := models.Migrate(context.Background(), owner, quiet); err != nil {
				t.Fatal(err)
			}
			if err := models.CheckAccess(context.Background(), owner); err != nil {
				t.Fatalf("owner: %v", err)
			}
			// The pooler passes through only the users in its auth file, so
			// the restricted role is checked with SET ROLE inside a transaction.
			role := restrictedRole(t, owner)
			err := owner.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SET LOCAL ROLE " + role).Error; err != nil {
					return err
				}
				return models.CheckAccess(context.Background(), tx)
			})
			want := fmt.Sprintf(`role %q lacks INSERT ON users, UPDATE ON users, INSERT ON webhook_events, UPDATE ON webhook_events, DELETE ON webhook_events, INSERT ON organizations, UPDATE ON organizations, INSERT ON organization_memberships, UPDATE ON organization_memberships, SELECT ON sync_state, UPDATE ON sync_state: as the tables' owner, run GRANT INSERT, UPDATE ON users TO %[1]s; GRANT INSERT, UPDATE, DELETE ON webhook_events TO %[1]s; GRANT INSERT, UPDATE ON organizations TO %[1]s; GRANT INSERT, UPDATE ON organization_memberships TO %[1]s; GRANT SELECT, UPDATE ON sync_state TO %[1]s;`, role)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("restricted role: err = %v, want it to contain %q", err, want)
			}
			// The documented grants are enough.
			for _, stmt := range strings.Split(models.RuntimeGrants(role), "\n") {
				if err := owner.Exec(stmt).Error; err != nil {
					t.Fatal(err)
				}
			}
			check := func() error {
				return owner.Transaction(func(tx *gorm.DB) error {
					tx.Exec("SET LOCAL ROLE " + role)
					return models.CheckAccess(context.Background(), tx)
				})
			}
			if err := check(); err != nil {
				t.Errorf("after the documented grants: %v", err)
			}
		})
	}
}

// restrictedRole creates a role (dropped when the test ends) that may read
// users, webhook_events and goose_db_version and write nothing.
func restrictedRole(t *testing.T, db *gorm.DB) string {
	t.Helper()
	role := "usersync_ro_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	stmts := []string{
		"DROP ROLE IF EXISTS " + role,
		"CREATE ROLE " + role,
		"GRANT SELECT ON users, webhook_events, organizations, organization_memberships, goose_db_version TO " + role,
	}
	for _, s := range stmts {
		if err := db.Exec(s).Error; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		db.Exec("DROP OWNED BY " + role)
		db.Exec("DROP ROLE IF EXISTS " + role)
	})
	return role
}

// The pool tells a direct connection from a pooled one by what the server
// does, not by the URL's host or port: the pooler here listens on an
// ordinary port.
func TestDetectPooler(t *testing.T) {
	for _, conn := range connections {
		t.Run(conn.name, func(t *testing.T) {
			pooled, err := models.DetectPooler(context.Background(), conn.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			if want := conn.name == "pgbouncer"; pooled != want {
				t.Errorf("DetectPooler = %v, want %v", pooled, want)
			}
		})
	}
}

// The grants docs/hosted-postgres.md tells operators to run are exactly the
// ones CheckAccess checks.
func TestDocumentedGrantsMatchTheCheck(t *testing.T) {
	doc, err := os.ReadFile("../docs/hosted-postgres.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(models.RuntimeGrants("usersync_app"), "\n") {
		if !strings.Contains(string(doc), line) {
			t.Errorf("docs/hosted-postgres.md lacks %q", line)
		}
	}
}

// A role that may use the tables but not read the migration log is told
// the grant it lacks when serve migrates at start, not given goose's error.
func TestMigrateNamesTheMigrationLogGrant(t *testing.T) {
	dsn := modelstest.NewDSN(t, models.Postgres)
	owner := modelstest.Open(t, models.Postgres, dsn)
	role := "usersync_nolog_" + fmt.Sprint(time.Now().UnixNano()%1e9)
	for _, stmt := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT SELECT, INSERT, UPDATE ON users, organizations, organization_memberships TO " + role,
	} {
		if err := owner.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		owner.Exec("DROP OWNED BY " + role)
		owner.Exec("DROP ROLE IF EXISTS " + role)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	db, err := models.Open(context.Background(), models.Postgres, u.String(), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	err = models.Migrate(context.Background(), db, slog.New(slog.DiscardHandler))
	want := fmt.Sprintf("GRANT SELECT ON goose_db_version TO %s;", role)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Migrate as a role without SELECT on goose_db_version: %v, want it to contain %q", err, want)
	}
}
