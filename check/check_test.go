package check_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/check"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// goodEnv is a correct deployment on the given database URL.
func goodEnv(fake *clerktest.Fake, databaseURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":                 databaseURL,
		"CLERK_SECRET_KEY":             clerktest.SecretKey,
		"CLERK_API_URL":                fake.URL,
		"CLERK_WEBHOOK_SIGNING_SECRET": secret,
		"CLERK_AUTHORIZED_PARTIES":     "http://localhost:3000",
	}
}

// migrated returns the DATABASE_URL of a fresh migrated database.
func migrated(t *testing.T, d models.Dialect) string {
	dsn := modelstest.NewDSN(t, d)
	modelstest.Open(t, d, dsn)
	if d == models.SQLite {
		return "sqlite://" + dsn
	}
	return dsn
}

func runCheck(t *testing.T, env map[string]string) (bool, string) {
	t.Helper()
	var out bytes.Buffer
	passed := check.Run(context.Background(), func(k string) string { return env[k] }, &out)
	return passed, out.String()
}

// line returns the report line of the named check.
func line(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(strings.Join(f[1:], " "), name+" ") {
			return l
		}
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return ""
}

func TestCheckPassesOnACorrectSetup(t *testing.T) {
	fake := clerktest.New(t)
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			passed, out := runCheck(t, goodEnv(fake, migrated(t, d)))
			if !passed || strings.Contains(out, "FAIL") || strings.Contains(out, "skip") || strings.Count(out, "\nok ") != 11 {
				t.Fatalf("check failed on a correct setup:\n%s", out)
			}
		})
	}
}

// The same correct setup through a real transaction-mode pooler
// (PgBouncer): every check passes, and the connection line says it is
// pooled.
func TestCheckPassesThroughPgBouncer(t *testing.T) {
	fake := clerktest.New(t)
	pooled := modelstest.PoolerURLFor(t, migrated(t, models.Postgres))
	passed, out := runCheck(t, goodEnv(fake, pooled))
	if !passed || strings.Contains(out, "FAIL") || strings.Count(out, "\nok ") != 11 {
		t.Fatalf("check failed through the pooler:\n%s", out)
	}
	if l := line(t, out, "connection"); !strings.Contains(l, "pooler") {
		t.Errorf("connection line %q does not say the connection is pooled", l)
	}
}

// Each broken deployment fails with a line naming the cause.
func TestCheckNamesEachFailure(t *testing.T) {
	fake := clerktest.New(t)
	sqliteURL := migrated(t, models.SQLite)
	cases := []struct {
		name  string
		env   func(env map[string]string)
		clock time.Duration
		check string // the line that must fail
		want  string
	}{
		{name: "bad configuration", env: func(e map[string]string) { e["WEBHOOK_EVENTS_RETENTION"] = "1h" },
			check: "configuration", want: "WEBHOOK_EVENTS_RETENTION"},
		{name: "database down", env: func(e map[string]string) { e["DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/none?sslmode=disable" },
			check: "database", want: "check DATABASE_URL"},
		{name: "no SQLite file", env: func(e map[string]string) { e["DATABASE_URL"] = "sqlite://" + t.TempDir() + "/missing.db" },
			check: "database", want: "does not exist yet"},
		{name: "read-only SQLite", env: func(e map[string]string) { e["DATABASE_URL"] = sqliteURL + "?_pragma=query_only(1)" },
			check: "grants", want: "cannot write the SQLite file"},
		{name: "wrong Clerk key", env: func(e map[string]string) { e["CLERK_SECRET_KEY"] = "sk_test_wrong" },
			check: "clerk api key", want: "Clerk refused CLERK_SECRET_KEY (401)"},
		{name: "no Clerk key", env: func(e map[string]string) { delete(e, "CLERK_SECRET_KEY") },
			check: "clerk api key", want: "CLERK_SECRET_KEY is not set"},
		{name: "Clerk unreachable", env: func(e map[string]string) { e["CLERK_API_URL"] = "http://127.0.0.1:1" },
			check: "clerk api key", want: "cannot reach Clerk at CLERK_API_URL"},
		{name: "clock behind", clock: 7 * time.Minute, check: "clock", want: "behind Clerk's: Svix refuses"},
		{name: "clock ahead", clock: -6 * time.Minute, check: "clock", want: "ahead of Clerk's"},
		{name: "no webhook secret", env: func(e map[string]string) { delete(e, "CLERK_WEBHOOK_SIGNING_SECRET") },
			check: "webhook secret", want: "CLERK_WEBHOOK_SIGNING_SECRET is not set"},
		{name: "malformed webhook secret", env: func(e map[string]string) { e["CLERK_WEBHOOK_SIGNING_SECRET"] = "whsec_!!" },
			check: "configuration", want: "CLERK_WEBHOOK_SIGNING_SECRET: secret 1 of 1"},
		{name: "no authorized parties", env: func(e map[string]string) { delete(e, "CLERK_AUTHORIZED_PARTIES") },
			check: "cors", want: "CLERK_AUTHORIZED_PARTIES is not set"},
		{name: "CORS origin without azp", env: func(e map[string]string) { e["CORS_ALLOWED_ORIGINS"] = "https://other.example.com" },
			check: "cors", want: "CORS_ALLOWED_ORIGINS allows https://other.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := goodEnv(fake, sqliteURL)
			if tc.env != nil {
				tc.env(env)
			}
			fake.SetClock(tc.clock)
			defer fake.SetClock(0)
			passed, out := runCheck(t, env)
			if passed {
				t.Fatalf("check passed:\n%s", out)
			}
			if l := line(t, out, tc.check); !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, tc.want) {
				t.Fatalf("%s line = %q, want FAIL containing %q\n%s", tc.check, l, tc.want, out)
			}
			if n := strings.Count(out, "FAIL"); n != 1 {
				t.Errorf("%d lines failed, want only %s:\n%s", n, tc.check, out)
			}
		})
	}
}

func TestCheckSchemaPendingOnPostgres(t *testing.T) {
	fake := clerktest.New(t)
	passed, out := runCheck(t, goodEnv(fake, modelstest.NewDSN(t, models.Postgres))) // created, not migrated
	if l := line(t, out, "schema"); passed || !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, "usersync migrate") {
		t.Fatalf("schema line = %q\n%s", l, out)
	}
}

// A role that may connect but holds no grants on the tables.
func TestCheckGrantsOnPostgres(t *testing.T) {
	fake := clerktest.New(t)
	dsn := migrated(t, models.Postgres)
	owner := modelstest.Open(t, models.Postgres, dsn)
	role := "usersync_check_" + strings.ToLower(rand.Text()[:10])
	if err := owner.Exec("CREATE ROLE " + role + " LOGIN").Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Exec("DROP OWNED BY " + role); owner.Exec("DROP ROLE " + role) })
	u, _ := url.Parse(dsn)
	u.User = url.User(role)
	env := goodEnv(fake, u.String())

	passed, out := runCheck(t, env)
	l := line(t, out, "grants")
	if passed || !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, `role "`+role+`" lacks SELECT ON users, INSERT ON users`) ||
		!strings.Contains(l, "GRANT SELECT, INSERT, UPDATE ON users TO "+role+"; GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_events TO "+role+";") {
		t.Fatalf("grants line = %q\n%s", l, out)
	}

	// Read-only on one table is still a failure, naming what is missing.
	if err := owner.Exec("GRANT SELECT, INSERT, UPDATE, DELETE ON users TO " + role + "; GRANT SELECT ON webhook_events TO " + role +
		"; GRANT SELECT, INSERT, UPDATE ON organizations, organization_memberships TO " + role +
		"; GRANT SELECT, UPDATE ON sync_state TO " + role).Error; err != nil {
		t.Fatal(err)
	}
	_, out = runCheck(t, env)
	if l := line(t, out, "grants"); !strings.HasSuffix(strings.SplitN(l, ":", 2)[0], "lacks INSERT ON webhook_events, UPDATE ON webhook_events, DELETE ON webhook_events") {
		t.Fatalf("grants line = %q", l)
	}

	if l := line(t, out, "schema"); !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, "GRANT SELECT ON goose_db_version") {
		t.Fatalf("schema line = %q", l)
	}
	if err := owner.Exec("GRANT INSERT, UPDATE, DELETE ON webhook_events TO " + role + "; GRANT SELECT ON goose_db_version TO " + role).Error; err != nil {
		t.Fatal(err)
	}
	if passed, out := runCheck(t, env); !passed {
		t.Fatalf("check failed once the role holds its grants:\n%s", out)
	}
}

func TestPooler(t *testing.T) {
	cases := map[string]string{
		"postgres://u:p@ep-cool-name-123-pooler.eu-central-1.aws.neon.tech/app?sslmode=require": "Neon's pooled endpoint",
		"postgres://u:p@ep-cool-name-123.eu-central-1.aws.neon.tech/app?sslmode=require":        "",
		"postgresql://postgres.abc:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres":      "Supabase's pooler",
		"postgres://u@db.internal:6432/app":                                                     "a PgBouncer-style pooler (port 6432)",
		"postgres://u@db.internal:6543/app":                                                     "a PgBouncer-style pooler (port 6543)",
		"postgres://u@127.0.0.1:5432/app":                                                       "",
	}
	for dsn, want := range cases {
		if got := check.Pooler(dsn); !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("Pooler(%s) = %q, want %q…", dsn, got, want)
		}
	}
}

func TestConnectionLine(t *testing.T) {
	direct := migrated(t, models.Postgres)
	pooled := modelstest.PooledDSN(t)
	cases := []struct {
		db   config.Database
		want string
	}{
		{config.Database{Dialect: models.Postgres, DSN: direct, MaxConns: 10},
			"ok    connection      direct to Postgres; 10 connections per instance"},
		{config.Database{Dialect: models.Postgres, DSN: pooled, MaxConns: 10},
			"ok    connection      through a pooler: supported as is; migrations run through it too"},
		{config.Database{Dialect: models.Postgres, DSN: pooled, MigrateDSN: direct, MaxConns: 4},
			"migrations use DATABASE_URL_UNPOOLED; 4 connections per instance (DATABASE_MAX_CONNS)"},
		{config.Database{Dialect: models.Postgres, DSN: pooled + "&default_query_exec_mode=cache_statement", MaxConns: 10},
			"FAIL  connection      through a pooler, but DATABASE_URL asks for default_query_exec_mode=cache_statement"},
	}
	for _, tc := range cases {
		c := &check.Checker{Cfg: config.Config{Database: tc.db}}
		if r := c.Database(context.Background()); r.Status != check.OK {
			t.Fatal(r)
		}
		got := c.Connection(context.Background()).String()
		c.Close()
		if !strings.Contains(got, tc.want) {
			t.Errorf("Connection(%s) = %q, want it to contain %q", tc.db.DSN, got, tc.want)
		}
	}
}

// check prints how long ago a webhook last changed a row and the last
// successful reconcile pass began, and what reconcile is set to do.
func TestCheckPrintsTheSyncAges(t *testing.T) {
	fake := clerktest.New(t)
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := migrated(t, d)
			db := modelstest.Open(t, d, strings.TrimPrefix(dsn, "sqlite://"))
			now := time.Now()
			db.Exec("UPDATE sync_state SET last_success_at = ?", now.Add(-2*time.Minute).UnixMilli())
			db.Create(&models.WebhookEvent{SvixID: "msg_1", EventType: "user.updated", Outcome: "applied",
				ReceivedAt: now.Add(-3 * time.Hour)})
			db.Create(&models.WebhookEvent{SvixID: "msg_2", EventType: "user.updated", Outcome: "stale",
				ReceivedAt: now.Add(-time.Minute)})
			env := goodEnv(fake, dsn)
			env["SYNC_RECONCILE_INTERVAL"] = "15s"
			passed, out := runCheck(t, env)
			if !passed {
				t.Fatalf("check failed:\n%s", out)
			}
			if l := line(t, out, "last webhook"); !strings.HasSuffix(l, "a delivery last changed a row 3h0m0s ago") {
				t.Errorf("last webhook line = %q", l)
			}
			want := "the last successful pass began 2m0s ago (every 15s, a full pass every 24h0m0s)"
			if l := line(t, out, "reconcile"); !strings.HasSuffix(l, want) {
				t.Errorf("reconcile line = %q, want it to end %q", l, want)
			}
		})
	}
}

// pgTables lists the tables of the database at dsn, and goose's rows.
func pgTables(t *testing.T, dsn string) string {
	t.Helper()
	db, err := models.Open(context.Background(), models.Postgres, dsn, models.Options{}) // modelstest.Open would migrate
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	var tables []string
	if err := db.Raw(`SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`).
		Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	var rows int64
	if slices.Contains(tables, "goose_db_version") {
		db.Raw("SELECT count(*) FROM goose_db_version").Scan(&rows)
	}
	return fmt.Sprintf("%v, %d goose rows", tables, rows)
}

// check writes nothing to Postgres: on an empty database it reports the
// migrations pending without creating goose_db_version (goose's provider
// creates it when asked for versions), and a migrated one is left as it was.
func TestCheckWritesNothingToPostgres(t *testing.T) {
	fake := clerktest.New(t)
	for name, dsn := range map[string]string{"empty": modelstest.NewDSN(t, models.Postgres), "migrated": migrated(t, models.Postgres)} {
		t.Run(name, func(t *testing.T) {
			before := pgTables(t, dsn)
			_, out := runCheck(t, goodEnv(fake, dsn))
			if after := pgTables(t, dsn); after != before {
				t.Errorf("tables before check: %s; after: %s", before, after)
			}
			schema := line(t, out, "schema")
			if want := map[string]string{"empty": "FAIL", "migrated": "ok"}[name]; !strings.HasPrefix(schema, want) {
				t.Errorf("schema line = %q, want %s", schema, want)
			}
		})
	}
}

// check neither creates, chmods nor writes an SQLite file: an empty 0644
// file and a migrated 0600 one keep their mode and modification time, and
// no -wal or -shm file is left beside them.
func TestCheckWritesNothingToSQLite(t *testing.T) {
	fake := clerktest.New(t)
	empty := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	full := strings.TrimPrefix(migrated(t, models.SQLite), "sqlite://")
	for name, path := range map[string]string{"empty": empty, "migrated": full} {
		t.Run(name, func(t *testing.T) {
			past := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(path, past, past); err != nil {
				t.Fatal(err)
			}
			stat := func() string {
				info, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				entries, _ := os.ReadDir(filepath.Dir(path))
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				return fmt.Sprintf("mode %04o, mtime %s, size %d, files %v", info.Mode().Perm(), info.ModTime().UTC(), info.Size(), names)
			}
			before := stat()
			_, out := runCheck(t, goodEnv(fake, "sqlite://"+path))
			if after := stat(); after != before {
				t.Errorf("before check: %s\nafter: %s\n%s", before, after, out)
			}
			schema := line(t, out, "schema")
			if want := map[string]string{"empty": "FAIL", "migrated": "ok"}[name]; !strings.HasPrefix(schema, want) {
				t.Errorf("schema line = %q, want %s\n%s", schema, want, out)
			}
		})
	}
}

// check names the instance the database mirrors and fails for a key of
// another one, without binding an unbound database.
func TestCheckInstance(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			fake := clerktest.New(t)
			dsn := migrated(t, d)
			db := modelstest.Open(t, d, strings.TrimPrefix(dsn, "sqlite://"))
			env := goodEnv(fake, dsn)
			_, out := runCheck(t, env)
			if l := line(t, out, "instance"); !strings.HasPrefix(l, "ok") || !strings.Contains(l, "not bound yet") {
				t.Errorf("unbound: %q", l)
			}
			if bound, _ := models.BoundInstance(t.Context(), db); bound != "" {
				t.Errorf("check bound the database to %q; it must write nothing", bound)
			}
			if _, err := models.BindInstance(t.Context(), db, clerktest.KeyID); err != nil {
				t.Fatal(err)
			}
			_, out = runCheck(t, env)
			want := "ok    instance        this database mirrors " + clerktest.KeyID + "; CLERK_SECRET_KEY is a development (sk_test_) key of that instance"
			if l := line(t, out, "instance"); l != want {
				t.Errorf("bound:\n got %q\nwant %q", l, want)
			}
			fake.SetKeyIDs("ins_other")
			passed, out := runCheck(t, env)
			l := line(t, out, "instance")
			if passed || !strings.HasPrefix(l, "FAIL") || !strings.Contains(l, "belongs to Clerk instance ins_other, but this database mirrors "+clerktest.KeyID) ||
				!strings.Contains(l, "usersync backfill --rebind") {
				t.Errorf("another instance's key: passed %v, %q", passed, l)
			}
		})
	}
}
