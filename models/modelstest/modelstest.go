// Package modelstest gives tests a fresh, migrated database of each kind:
// a temporary SQLite file, and a new Postgres database created on the server
// named by TEST_DATABASE_URL and dropped when the test ends.
package modelstest

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/usersync/usersync/internal/testenv"
	"github.com/usersync/usersync/models"
)

// Dialects are the databases every database test runs against.
var Dialects = []models.Dialect{models.SQLite, models.Postgres}

// Each runs fn as a subtest per dialect, each with its own fresh database.
func Each(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, New(t, d))
		})
	}
}

// EachWithPooler is Each plus a third subtest on Postgres reached through
// the transaction-mode pooler at TEST_PGBOUNCER_URL (see PooledDSN).
func EachWithPooler(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	Each(t, fn)
	t.Run("pgbouncer", func(t *testing.T) {
		fn(t, Open(t, models.Postgres, PooledDSN(t)))
	})
}

// EachPostgres runs fn on Postgres, directly and through the pooler, for
// tests of what only Postgres has (its plan cache, pgx batches).
func EachPostgres(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) { fn(t, New(t, models.Postgres)) })
	t.Run("pgbouncer", func(t *testing.T) { fn(t, Open(t, models.Postgres, PooledDSN(t))) })
}

// EachPair is EachWithPooler for tests that compare two fresh databases of
// the same kind (say, a batch against one-at-a-time): fn gets two.
func EachPair(t *testing.T, fn func(t *testing.T, a, b *gorm.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, New(t, d), New(t, d))
		})
	}
	t.Run("pgbouncer", func(t *testing.T) {
		fn(t, Open(t, models.Postgres, PooledDSN(t)), Open(t, models.Postgres, PooledDSN(t)))
	})
}

// New returns a fresh migrated database of the given dialect, closed (and on
// Postgres dropped) when the test ends. Without TEST_DATABASE_URL the Postgres
// case is skipped with the reason, except under CI=true, where it fails.
func New(t testing.TB, dialect models.Dialect) *gorm.DB {
	t.Helper()
	return Open(t, dialect, NewDSN(t, dialect))
}

// Open opens and migrates the database at dsn, closing it when the test ends.
func Open(t testing.TB, dialect models.Dialect, dsn string) *gorm.DB {
	t.Helper()
	db, err := models.Open(context.Background(), dialect, dsn, models.Options{})
	if err != nil {
		t.Fatalf("open %s test database: %v", dialect, err)
	}
	t.Cleanup(func() { models.Close(db) })
	if err := models.Migrate(context.Background(), db, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("migrate %s test database: %v", dialect, err)
	}
	return db
}

// NewDSN creates an empty database and returns the DSN models.Open takes for
// it; for tests that open the database themselves (a server under test).
func NewDSN(t testing.TB, dialect models.Dialect) string {
	t.Helper()
	if dialect == models.SQLite {
		return filepath.Join(t.TempDir(), "usersync.db")
	}
	return newPostgresDatabase(t)
}

// PostgresURL returns TEST_DATABASE_URL, or skips (fails under CI) without it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return requiredEnv(t, "TEST_DATABASE_URL", "Postgres",
		"set TEST_DATABASE_URL=postgres://user@host:5432/db (a role that may CREATE DATABASE)")
}

// requiredEnv returns the variable, or skips the test, which needs what,
// saying how to fix it (testenv.Skip: under CI=true it fails instead).
func requiredEnv(t testing.TB, name, what, fix string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		testenv.Skip(t, what, fix)
	}
	return v
}

// PooledDSN creates an empty Postgres database, like NewDSN, and returns its
// URL through the transaction-mode pooler at TEST_PGBOUNCER_URL (a
// postgres://user@host:port URL that passes database names through, as
// .ci/pgbouncer.sh starts one). Without it the test is skipped, except
// under CI=true, where it fails.
func PooledDSN(t testing.TB) string {
	t.Helper()
	return PoolerURLFor(t, newPostgresDatabase(t))
}

// PoolerURLFor is the URL of the Postgres database at direct (a NewDSN
// URL) through the pooler at TEST_PGBOUNCER_URL, so a test can reach one
// database both ways (two replicas, one pooled). Without the pooler the
// test is skipped, except under CI=true, where it fails.
func PoolerURLFor(t testing.TB, direct string) string {
	t.Helper()
	pooler := requiredEnv(t, "TEST_PGBOUNCER_URL", "pooler",
		"run .ci/pgbouncer.sh start and set TEST_PGBOUNCER_URL to the URL it prints")
	d, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pooler)
	if err != nil {
		t.Fatalf("TEST_PGBOUNCER_URL: %v", err)
	}
	u.Path = d.Path
	u.RawQuery = "sslmode=disable"
	return u.String()
}

var (
	adminOnce sync.Once
	admin     *gorm.DB
	adminErr  error
)

func newPostgresDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	adminOnce.Do(func() {
		admin, adminErr = models.Open(context.Background(), models.Postgres, base, models.Options{})
	})
	if adminErr != nil {
		t.Fatalf("TEST_DATABASE_URL does not answer: %v", adminErr)
	}
	name := "usersync_test_" + strings.ToLower(rand.Text())
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		// Registered before the test's own Close cleanup, so it runs after it.
		if err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error; err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
