package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args      []string
		env       map[string]string
		usage     bool   // want a usageError (exit 2)
		stdoutHas string // for successful runs
		errHas    string
	}{
		{args: []string{"--help"}, stdoutHas: "usersync migrate"},
		{args: []string{"serve", "--help"}, stdoutHas: "Usage: usersync [serve]"},
		{args: []string{"migrate", "-h"}, stdoutHas: "Usage: usersync migrate"},
		{args: []string{"webhook", "send", "--help"}, stdoutHas: "-type"},
		{args: []string{"version"}, stdoutHas: "usersync dev"},
		{args: []string{"version", "--help"}, stdoutHas: "Usage: usersync version"},
		{args: []string{"frobnicate"}, usage: true, errHas: `unknown command "frobnicate"`},
		{args: []string{"webhook"}, usage: true, errHas: "webhook send"},
		{args: []string{"serve", "--port", "1"}, usage: true, errHas: "-port"},
		{args: []string{"migrate", "extra"}, usage: true, errHas: `unexpected argument "extra"`},
		{args: []string{"migrate"}, env: map[string]string{"DATABASE_URL": "mysql://x"}, usage: true, errHas: "DATABASE_URL"},
		{args: []string{"migrate"}, env: map[string]string{"DATABASE_URL": "postgres://%zz"}, usage: true, errHas: "DATABASE_URL: postgres://%zz is not a valid URL"},
		{args: []string{"serve"}, env: map[string]string{"DATABASE_URL": "postgres://app:hunter2@h:0x/db"}, usage: true, errHas: "DATABASE_URL: postgres://app:xxxxx@h:0x/db is not a valid"},
		{args: []string{"serve"}, env: map[string]string{"DATABASE_MAX_CONNS": "-1"}, usage: true, errHas: "DATABASE_MAX_CONNS"},
		{args: []string{"serve"}, env: map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_"}, usage: true, errHas: "CLERK_WEBHOOK_SIGNING_SECRET"},
		{args: []string{"serve"}, env: map[string]string{"WEBHOOK_EVENTS_RETENTION": "24h"}, usage: true, errHas: "WEBHOOK_EVENTS_RETENTION"},
		{args: []string{"webhook", "--help"}, stdoutHas: "usersync webhook send"},
		{args: []string{"check", "--help"}, stdoutHas: "Usage: usersync check"},
		{args: []string{"webhook", "send", "--type", "user.banned"}, usage: true, errHas: "--type"},
		{args: []string{"backfill", "--help"}, stdoutHas: "--prune"},
		{args: []string{"backfill"}, usage: true, errHas: "CLERK_SECRET_KEY"},
		{args: []string{"backfill", "--page-size", "0"}, usage: true, errHas: "--page-size"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, envOf(tc.env), &stdout, &stderr)
			var u usageError
			if tc.usage != errors.As(err, &u) {
				t.Fatalf("err = %v, want usage error %v", err, tc.usage)
			}
			if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas) || strings.Contains(err.Error(), "\n")) {
				t.Fatalf("err = %v, want one line containing %q", err, tc.errHas)
			}
			if tc.errHas == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(stdout.String(), tc.stdoutHas) {
				t.Fatalf("stdout = %q, want it to contain %q", stdout.String(), tc.stdoutHas)
			}
		})
	}
}

// The README's first-run story on each database (and Postgres through a
// transaction pooler): serve starts with no
// webhook secret, webhook send signs a sample with the same development
// secret, the user lands in the table, and SIGTERM stops serve cleanly.
func TestServeAndWebhookSend(t *testing.T) {
	targets := []struct {
		name string
		d    models.Dialect
		dsn  func(testing.TB) string
	}{
		{"sqlite", models.SQLite, func(t testing.TB) string { return modelstest.NewDSN(t, models.SQLite) }},
		{"postgres", models.Postgres, func(t testing.TB) string { return modelstest.NewDSN(t, models.Postgres) }},
		{"pgbouncer", models.Postgres, modelstest.PooledDSN}, // the plain pooled URL, as a provider shows it
	}
	for _, target := range targets {
		d := target.d
		t.Run(target.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // the dev secret for Postgres lives in the working directory
			dsn := target.dsn(t)
			env := map[string]string{"PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "warn"}
			if d == models.Postgres {
				env["DATABASE_URL"] = dsn
			} else {
				env["DATABASE_URL"] = "sqlite://" + dsn
			}
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			var serveLog bytes.Buffer
			go func() { served <- run(ctx, []string{"serve"}, envOf(env), &bytes.Buffer{}, &serveLog) }()
			waitHealthy(t, env["PORT"], served)

			// The README's sequence: created, updated, a redelivery of the same id.
			for _, step := range []struct{ args, want string }{
				{"--type user.created", `200 {"outcome":"applied"}`},
				{"--type user.updated --id msg_readme_1", `200 {"outcome":"applied"}`},
				{"--type user.updated --id msg_readme_1", `200 {"outcome":"duplicate"}`},
			} {
				var out bytes.Buffer
				args := append([]string{"webhook", "send"}, strings.Fields(step.args)...)
				if err := run(context.Background(), args, envOf(env), &out, &bytes.Buffer{}); err != nil {
					t.Fatalf("webhook send %s: %v", step.args, err)
				}
				if got := strings.TrimSpace(out.String()); got != step.want {
					t.Fatalf("webhook send %s printed %q, want %q", step.args, got, step.want)
				}
			}
			stop()
			if err := <-served; err != nil {
				t.Fatalf("serve: %v", err)
			}
			if strings.Contains(serveLog.String(), "whsec_") {
				t.Error("serve logged the signing secret")
			}
			for _, says := range []string{"CLERK_WEBHOOK_SIGNING_SECRET is not set", "dev_secret_file", "CLERK_SECRET_KEY is not set"} {
				if !strings.Contains(serveLog.String(), says) {
					t.Errorf("serve's log does not say %q:\n%s", says, serveLog.String())
				}
			}

			db := modelstest.Open(t, d, dsn)
			u, err := modelstest.FindUser(context.Background(), db, sampleUserID)
			if err != nil {
				t.Fatal(err)
			}
			if u.Email == nil || *u.Email != "sample.user@example.com" || u.SyncSource != models.SourceWebhook {
				t.Errorf("sample row = %+v", u)
			}
			info, err := os.Stat(devSecretPath(mustConfig(t, env)))
			if err != nil || info.Mode().Perm() != 0o600 {
				t.Errorf("dev secret file: %v, mode %v; want 0600", err, info.Mode())
			}
		})
	}
}

func TestWebhookSendReportsRejection(t *testing.T) {
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		w.Write([]byte(`{"error":"invalid webhook signature"}`))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	env := map[string]string{"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_c2Vjb25k"}
	var out bytes.Buffer
	err = run(context.Background(), []string{"webhook", "send", "--url", "http://" + ln.Addr().String()}, envOf(env), &out, &bytes.Buffer{})
	if err == nil || out.String() != "400 {\"error\":\"invalid webhook signature\"}\n" {
		t.Fatalf("err = %v, stdout = %q", err, out.String())
	}
}

func TestDevSecretIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), devSecretFile)
	first, err := loadOrCreateDevSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadOrCreateDevSecret(path)
	if err != nil || second != first || !strings.HasPrefix(first, "whsec_") {
		t.Fatalf("second load = %q, %v; first %q", second, err, first)
	}
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, err := loadOrCreateDevSecret(path); err == nil || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("corrupt secret file: err = %v; want an error that does not echo the file", err)
	}
}

func mustConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, _, err := setup(envOf(env), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitHealthy waits until serve is ready: /readyz, since /healthz answers
// while serve still waits for the database.
func waitHealthy(t *testing.T, port string, served <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("serve did not become healthy")
}

func TestBackfillCommand(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := modelstest.NewDSN(t, d)
			fake := clerktest.New(t)
			for i := range 7 {
				fake.PutUser(clerktest.User(fmt.Sprintf("user_%d", i), 10, fmt.Sprintf("u%d@example.com", i), nil))
			}
			env := map[string]string{"CLERK_SECRET_KEY": clerktest.SecretKey, "CLERK_API_URL": fake.URL, "LOG_LEVEL": "warn"}
			if d == models.Postgres {
				env["DATABASE_URL"] = dsn
			} else {
				env["DATABASE_URL"] = "file:" + dsn
			}
			var out bytes.Buffer
			// A dry run on a database without the schema refuses, and creates nothing.
			err := run(context.Background(), []string{"backfill", "--dry-run"}, envOf(env), &out, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), "migrate") {
				t.Fatalf("dry run on an empty database: err = %v, want a pointer to migrate", err)
			}
			if d == models.SQLite {
				if _, err := os.Stat(dsn); !os.IsNotExist(err) {
					t.Fatalf("dry run created %s: %v", dsn, err)
				}
			}
			if err := run(context.Background(), []string{"migrate"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			if err := run(context.Background(), []string{"backfill", "--page-size", "3", "--dry-run"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "(dry run: nothing was written)") {
				t.Errorf("dry-run summary %q does not say it wrote nothing", out.String())
			}
			for _, want := range []string{"listed  7", "created  7"} {
				if !strings.Contains(collapse(out.String()), want) {
					t.Errorf("dry-run summary %q lacks %q", out.String(), want)
				}
			}
			out.Reset()
			if err := run(context.Background(), []string{"backfill", "--page-size", "3"}, envOf(env), &out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if s := collapse(out.String()); !strings.Contains(s, "created  7") || !strings.Contains(s, "errors  0") {
				t.Errorf("summary = %q", out.String())
			}
			var n int64
			modelstest.Open(t, d, dsn).Model(&models.User{}).Count(&n)
			if n != 7 {
				t.Errorf("rows = %d, want 7", n)
			}

			// A user Clerk cannot map makes the run exit non-zero.
			fake.PutUser(map[string]any{"id": "user_bad", "updated_at": "x"})
			err = run(context.Background(), []string{"backfill"}, envOf(env), &out, &bytes.Buffer{})
			var u usageError
			if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), "1 users failed") {
				t.Errorf("err = %v, want a runtime failure naming 1 failed user", err)
			}
		})
	}
}

// collapse squeezes runs of spaces, so table output can be matched.
func collapse(s string) string { return strings.Join(strings.Fields(s), "  ") }

func TestDescribeDatabaseHidesPasswords(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:hunter2@db.example.com/app",
		"postgres://u@db.example.com/app?sslmode=require&password=hunter2",
		"postgresql://u@db.example.com/app?sslpassword=hunter2",
	} {
		got := describeDatabase(config.Database{Dialect: models.Postgres, DSN: dsn})
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "db.example.com") {
			t.Errorf("describeDatabase(%q) = %q", dsn, got)
		}
	}
}

// LOG_FORMAT picks JSON (the default) or text lines, and the start-up
// configuration line masks the secrets it describes.
func TestLogFormat(t *testing.T) {
	for format, want := range map[string]string{"": `"msg":"configuration"`, "json": `"msg":"configuration"`, "text": "msg=configuration"} {
		var out bytes.Buffer
		env := map[string]string{"LOG_FORMAT": format, "CLERK_SECRET_KEY": "sk_live_secretvalue"}
		if _, _, err := setup(envOf(env), &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "secretvalue") {
			t.Errorf("LOG_FORMAT=%q logged %q", format, out.String())
		}
	}
}
