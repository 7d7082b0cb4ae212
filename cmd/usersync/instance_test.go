package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// instanceEnv is a migrated database of dialect d and a fake Clerk with
// users, as backfill's and serve's configuration.
func instanceEnv(t *testing.T, d models.Dialect, users int) (map[string]string, *clerktest.Fake) {
	t.Helper()
	dsn := modelstest.NewDSN(t, d)
	modelstest.Open(t, d, dsn)
	fake := clerktest.New(t)
	for i := range users {
		fake.PutUser(clerktest.User(fmt.Sprintf("user_%d", i), 10, fmt.Sprintf("u%d@example.com", i), nil))
	}
	env := map[string]string{"CLERK_SECRET_KEY": clerktest.SecretKey, "CLERK_API_URL": fake.URL, "LOG_LEVEL": "warn",
		"DATABASE_URL": dsn, "CLERK_WEBHOOK_SIGNING_SECRET": testSecret, "SYNC_RECONCILE_INTERVAL": "0"}
	if d == models.SQLite {
		env["DATABASE_URL"] = "file:" + dsn
	}
	return env, fake
}

func boundInstance(t *testing.T, env map[string]string) string {
	t.Helper()
	cfg := mustConfig(t, env)
	db := modelstest.Open(t, cfg.Database.Dialect, cfg.Database.DSN)
	bound, err := models.BoundInstance(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return bound
}

func bind(t *testing.T, env map[string]string, instance string) {
	t.Helper()
	cfg := mustConfig(t, env)
	db := modelstest.Open(t, cfg.Database.Dialect, cfg.Database.DSN)
	if _, err := models.RebindInstance(t.Context(), db, instance); err != nil {
		t.Fatal(err)
	}
}

// A key of another instance is refused before anything is listed or
// written; --rebind is the way to change the binding, and says so.
func TestBackfillGuardsTheInstance(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			env, fake := instanceEnv(t, d, 3)
			var out bytes.Buffer
			if err := run(context.Background(), []string{"backfill"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if got := boundInstance(t, env); got != clerktest.KeyID {
				t.Fatalf("after the first backfill the database mirrors %q, want the key's %s", got, clerktest.KeyID)
			}

			fake.SetKeyIDs("ins_dev") // now the key of another instance
			lists := fake.Hits(clerktest.OpListUsers)
			for _, args := range [][]string{{"backfill", "--prune"}, {"backfill", "--dry-run"}} {
				err := run(context.Background(), args, envOf(env), &out, &bytes.Buffer{})
				var u usageError
				want := "CLERK_SECRET_KEY belongs to Clerk instance ins_dev, but this database mirrors " + clerktest.KeyID
				if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--rebind") {
					t.Fatalf("%v with another instance's key: err = %v, want exit 1 naming both instances and --rebind", args, err)
				}
			}
			if n := fake.Hits(clerktest.OpListUsers) - lists; n != 0 {
				t.Errorf("%d listings with another instance's key, want none", n)
			}

			out.Reset()
			if err := run(context.Background(), []string{"backfill", "--rebind", "--dry-run"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "rebind (dry run): this database mirrors "+clerktest.KeyID+"; it would mirror ins_dev") ||
				boundInstance(t, env) != clerktest.KeyID {
				t.Errorf("rebind dry run: %q, bound %q", out.String(), boundInstance(t, env))
			}
			out.Reset()
			if err := run(context.Background(), []string{"backfill", "--rebind"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "rebind: this database mirrored Clerk instance "+clerktest.KeyID+"; it now mirrors ins_dev") ||
				boundInstance(t, env) != "ins_dev" {
				t.Errorf("rebind: %q, bound %q", out.String(), boundInstance(t, env))
			}
		})
	}
}

// A run that would prune more than the cap prunes nothing, says how to go
// on and exits 1; with --prune-max it prunes.
func TestBackfillPruneCapExitsOne(t *testing.T) {
	env, _ := instanceEnv(t, models.SQLite, 5)
	cfg := mustConfig(t, env)
	db := modelstest.Open(t, cfg.Database.Dialect, cfg.Database.DSN)
	for i := range 11 {
		if _, err := models.ApplySnapshot(t.Context(), db, models.Snapshot{ID: fmt.Sprintf("gone_%d", i), UpdatedAt: 1}, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"backfill", "--prune"}, envOf(env), &out, &bytes.Buffer{})
	var u usageError
	if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "prune cap refused to prune users") {
		t.Fatalf("err = %v, want exit 1 for the refused prune", err)
	}
	want := "prune refused for users: up to 11 of its 16 live rows would be pruned (Clerk's listing did not return them), " +
		"more than the cap of 10; nothing was pruned in users. If Clerk really deleted them, run again with --prune --prune-max 11"
	if !strings.Contains(out.String(), want) || !strings.Contains(collapse(out.String()), "created  5") {
		t.Errorf("output:\n%s\nwant the users created and:\n%s", out.String(), want)
	}
	if err := run(context.Background(), []string{"backfill", "--prune", "--prune-max", "11"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var live int64
	db.Model(&models.User{}).Where("deleted_at IS NULL").Count(&live)
	if live != 5 {
		t.Errorf("live rows = %d after --prune-max 11, want the 5 Clerk has", live)
	}
}

// serve learns the key's instance from one GET /v1/jwks at start, also
// when CLERK_JWT_KEY verifies sessions without the JWKS, binds an unbound
// database to it, and exits 1 when the database mirrors another.
func TestServeGuardsTheInstance(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			env, fake := instanceEnv(t, d, 0)
			env["CLERK_JWT_KEY"] = fake.PublicKeyPEM()
			env["PORT"] = fmt.Sprint(freePort(t))
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- run(ctx, []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{}) }()
			waitHealthy(t, env["PORT"], served)
			cancel()
			if err := <-served; err != nil {
				t.Fatalf("serve: %v", err)
			}
			if n := fake.Hits(clerktest.OpJWKS); n != 1 || boundInstance(t, env) != clerktest.KeyID {
				t.Fatalf("JWKS fetched %d times (want 1), bound %q (want %s)", n, boundInstance(t, env), clerktest.KeyID)
			}

			bind(t, env, "ins_prod") // as a webhook of the production instance would have
			env["PORT"] = fmt.Sprint(freePort(t))
			done := make(chan error, 1)
			go func() {
				done <- run(context.Background(), []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
			}()
			select {
			case err := <-done:
				var u usageError
				if err == nil || errors.As(err, &u) ||
					!strings.Contains(err.Error(), "belongs to Clerk instance "+clerktest.KeyID+", but this database mirrors ins_prod") {
					t.Fatalf("serve with another instance's key: %v, want exit 1 naming both", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("serve with another instance's key did not exit")
			}
		})
	}
}

// A key Clerk refuses (401) is named as the problem, as check names it,
// not reported as Clerk being unavailable.
func TestBackfillNamesARefusedKey(t *testing.T) {
	env, _ := instanceEnv(t, models.SQLite, 1)
	env["CLERK_SECRET_KEY"] = "sk_test_not_this_instance"
	err := run(context.Background(), []string{"backfill"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "Clerk refused CLERK_SECRET_KEY (401): ") ||
		strings.Contains(err.Error(), "unavailable") || strings.Contains(err.Error(), env["CLERK_SECRET_KEY"]) {
		t.Fatalf("backfill with a refused key: err = %v, want one naming CLERK_SECRET_KEY as refused, without the key", err)
	}
}
