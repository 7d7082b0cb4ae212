package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// `usersync migrate` run three times at once through the transaction
// pooler, then twice more in a row (a restart), with the plain pooled URL:
// every run exits 0 and the schema is applied once with no lock left.
func TestMigrateThroughPooler(t *testing.T) {
	dsn := modelstest.PooledDSN(t)
	env := envOf(map[string]string{"DATABASE_URL": dsn, "LOG_LEVEL": "warn"})
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			errs[i] = run(context.Background(), []string{"migrate"}, env, &bytes.Buffer{}, &bytes.Buffer{})
		})
	}
	wg.Wait()
	for range 2 {
		errs = append(errs, run(context.Background(), []string{"migrate"}, env, &bytes.Buffer{}, &bytes.Buffer{}))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db := modelstest.Open(t, models.Postgres, dsn)
	var versions, dups, advisory int
	db.Raw(`SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&versions)
	db.Raw(`SELECT count(*) FROM (SELECT version_id FROM goose_db_version GROUP BY 1 HAVING count(*) > 1) d`).Scan(&dups)
	db.Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&advisory)
	if versions == 0 || dups != 0 || advisory != 0 {
		t.Errorf("versions applied %d, applied twice %d, advisory locks %d; want >0, 0, 0", versions, dups, advisory)
	}
}

// `usersync backfill` through the transaction pooler: the import, a re-run
// that changes nothing, and a prune of a user Clerk deleted, each page a
// transaction whose statements the pooler may give any server connection.
func TestBackfillThroughPooler(t *testing.T) {
	dsn := modelstest.PooledDSN(t)
	fake := clerktest.New(t)
	for i := range 7 {
		fake.PutUser(clerktest.User(fmt.Sprintf("user_%d", i), 10, fmt.Sprintf("u%d@example.com", i), nil))
	}
	env := envOf(map[string]string{"DATABASE_URL": dsn, "CLERK_SECRET_KEY": clerktest.SecretKey,
		"CLERK_API_URL": fake.URL, "LOG_LEVEL": "warn"})
	if err := run(context.Background(), []string{"migrate"}, env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"backfill", "--page-size", "3"}, []string{"created  7", "errors  0"}},
		{[]string{"backfill", "--page-size", "3"}, []string{"unchanged  7", "errors  0"}},
		{[]string{"backfill", "--page-size", "3", "--prune"}, []string{"unchanged  6", "pruned  1", "errors  0"}},
	}
	for i, step := range steps {
		if i == 2 {
			fake.DeleteUser("user_0")
		}
		var out bytes.Buffer
		if err := run(context.Background(), step.args, env, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("step %d: %v\n%s", i+1, err, out.String())
		}
		for _, want := range step.want {
			if !strings.Contains(collapse(out.String()), want) {
				t.Errorf("step %d: summary %q lacks %q", i+1, out.String(), want)
			}
		}
	}
	var live, tombstones int64
	db := modelstest.Open(t, models.Postgres, dsn)
	db.Model(&models.User{}).Where("deleted_at IS NULL").Count(&live)
	db.Model(&models.User{}).Where("id = 'user_0' AND deleted_at IS NOT NULL").Count(&tombstones)
	if live != 6 || tombstones != 1 {
		t.Errorf("live rows %d, user_0 tombstoned %d; want 6, 1", live, tombstones)
	}
}

// With DATABASE_URL_UNPOOLED set, migrations run over it: here DATABASE_URL
// points at a port nobody listens on, and migrate still succeeds.
func TestMigrateUsesUnpooledURL(t *testing.T) {
	direct := modelstest.NewDSN(t, models.Postgres)
	u, _ := url.Parse(direct)
	u.Host = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := envOf(map[string]string{"DATABASE_URL": u.String(), "DATABASE_URL_UNPOOLED": direct, "LOG_LEVEL": "warn"})
	if err := run(context.Background(), []string{"migrate"}, env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("migrate over DATABASE_URL_UNPOOLED: %v", err)
	}
	var pending bool
	db := modelstest.Open(t, models.Postgres, direct)
	if pending, _ = models.MigrationsPending(context.Background(), db); pending {
		t.Error("migrations still pending")
	}
}

// A runtime role that may read the tables but write none of them: serve
// refuses to start with one line naming the missing grants, instead of
// answering /readyz 200 and every webhook 503. With the documented grants it
// starts.
func TestServeRefusesRoleWithoutGrants(t *testing.T) {
	owner := modelstest.New(t, models.Postgres) // migrated by its owner
	var dbName string
	owner.Raw("SELECT current_database()").Scan(&dbName)
	role := "usersync_app_" + strings.ToLower(dbName[len(dbName)-8:])
	execAll(t, owner,
		"CREATE ROLE "+role+" LOGIN",
		"GRANT SELECT ON users, webhook_events, organizations, organization_memberships, goose_db_version TO "+role)
	t.Cleanup(func() { owner.Exec("DROP OWNED BY " + role); owner.Exec("DROP ROLE " + role) })

	u, _ := url.Parse(modelstest.PostgresURL(t))
	u.User, u.Path = url.User(role), "/"+dbName
	env := map[string]string{"DATABASE_URL": u.String(), "LOG_LEVEL": "warn", "PORT": fmt.Sprint(freePort(t))}
	err := run(context.Background(), []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
	want := fmt.Sprintf(`role %q lacks INSERT ON users, UPDATE ON users, INSERT ON webhook_events, UPDATE ON webhook_events, DELETE ON webhook_events, INSERT ON organizations, UPDATE ON organizations, INSERT ON organization_memberships, UPDATE ON organization_memberships, SELECT ON sync_state, UPDATE ON sync_state: as the tables' owner, run GRANT INSERT, UPDATE ON users TO %[1]s; GRANT INSERT, UPDATE, DELETE ON webhook_events TO %[1]s; GRANT INSERT, UPDATE ON organizations TO %[1]s; GRANT INSERT, UPDATE ON organization_memberships TO %[1]s; GRANT SELECT, UPDATE ON sync_state TO %[1]s;`, role)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("serve as %s: err = %v, want it to contain %q", role, err, want)
	}

	execAll(t, owner, models.RuntimeGrants(role))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- run(ctx, []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{}) }()
	waitHealthy(t, env["PORT"], served)
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve with the documented grants: %v", err)
	}
}

func execAll(t *testing.T, db *gorm.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if err := db.Exec(s).Error; err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// DATABASE_MAX_CONNS bounds the pool the service runs on.
func TestMaxConnsSetsThePool(t *testing.T) {
	cfg := mustConfig(t, map[string]string{"DATABASE_URL": modelstest.NewDSN(t, models.Postgres), "DATABASE_MAX_CONNS": "3"})
	db, err := connect(context.Background(), cfg.Database, cfg.Database.DSN, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	sqlDB, _ := db.DB()
	if n := sqlDB.Stats().MaxOpenConnections; n != 3 {
		t.Errorf("MaxOpenConnections = %d, want 3", n)
	}
}

// A backfill that imports at least analyzeAfter rows refreshes the
// planner's statistics; a smaller one leaves them to autovacuum.
func TestBackfillAnalyzesAnImport(t *testing.T) {
	dsn := modelstest.NewDSN(t, models.Postgres)
	fake := clerktest.New(t)
	env := envOf(map[string]string{"DATABASE_URL": dsn, "CLERK_SECRET_KEY": clerktest.SecretKey,
		"CLERK_API_URL": fake.URL, "LOG_LEVEL": "warn"})
	db := modelstest.Open(t, models.Postgres, dsn)
	analyzed := func() bool {
		var n int
		db.Raw(`SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'users' AND last_analyze IS NOT NULL`).Scan(&n)
		return n == 1
	}
	for i, users := range []int{analyzeAfter - 1, analyzeAfter} {
		for j := range users {
			id := fmt.Sprintf("user_%d_%d", i, j)
			fake.PutUser(clerktest.User(id, 10, id+"@example.com", nil))
		}
		if err := run(context.Background(), []string{"backfill"}, env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		// pg_stat_user_tables is updated by the statistics collector: give it a moment.
		want := i == 1
		deadline := time.Now().Add(5 * time.Second)
		for analyzed() != want && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if got := analyzed(); got != want {
			t.Fatalf("after importing %d users: analyzed %v, want %v", users, got, want)
		}
	}
}
