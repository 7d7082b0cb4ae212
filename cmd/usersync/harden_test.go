package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi/clerktest"
)

// A development secret file that group or others can read (or write) is
// refused with one line naming the file, whoever created it: a planted
// 0644 secret would let anyone on the machine forge webhooks. The file the
// service creates itself is 0600.
func TestDevSecretMustBePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), devSecretFile)
	secret, err := loadOrCreateDevSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("created secret mode = %04o, want 0600", info.Mode().Perm())
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		os.Chmod(path, mode)
		_, err := loadOrCreateDevSecret(path)
		if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "\n") ||
			strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("mode %04o: err = %v; want a one-line refusal naming the file", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	if got, err := loadOrCreateDevSecret(path); err != nil || got != secret {
		t.Errorf("0600 file: %q, %v", got, err)
	}
}

// The whole command refuses to serve with a readable secret file: exit 1
// and a last line naming the file.
func TestServeRefusesReadableDevSecret(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, devSecretFile), []byte(testSecret+"\n"), 0o644)
	cmd := exec.Command(os.Args[0])
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS=serve", "LOG_LEVEL=error", "PORT=1",
		"CLERK_WEBHOOK_SIGNING_SECRET=", "CLERK_WEBHOOK_SECRET=", "DATABASE_URL=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(last, devSecretFile) || !strings.Contains(last, "group or others") {
		t.Fatalf("exit %v, last line %q", err, last)
	}
}

// The start-up line lists the allowed origins as they are compared, and
// masks credentials in CLERK_API_URL; a pattern is refused with exit 2.
func TestStartLogOriginsAndURLCredentials(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{
		"CLERK_API_URL":            "https://apiuser:apipass@api.example.com",
		"CORS_ALLOWED_ORIGINS":     "https://App.example.com/",
		"CLERK_AUTHORIZED_PARTIES": "https://app.example.com",
	}
	if _, _, err := setup(envOf(env), &out); err != nil {
		t.Fatal(err)
	}
	log := out.String()
	if !strings.Contains(log, `"cors_allowed_origins":["https://app.example.com"]`) ||
		!strings.Contains(log, `"clerk_authorized_parties":["https://app.example.com"]`) {
		t.Errorf("start-up log does not list the origins: %s", log)
	}
	if strings.Contains(log, "apipass") || strings.Contains(log, "apiuser") || !strings.Contains(log, "api.example.com") {
		t.Errorf("start-up log shows CLERK_API_URL credentials: %s", log)
	}
	err := run(t.Context(), []string{"migrate"}, envOf(map[string]string{"CORS_ALLOWED_ORIGINS": "https://*.vercel.app"}), &out, &out)
	var u usageError
	if !errors.As(err, &u) || !strings.HasPrefix(err.Error(), "CORS_ALLOWED_ORIGINS: ") {
		t.Errorf("pattern origin: err = %v, want a usage error (exit 2) naming CORS_ALLOWED_ORIGINS", err)
	}
}

// serve, migrate and check print no part of a DATABASE_URL password,
// whatever its shape (and whether or not the URL parses), and check prints
// no CLERK_API_URL credentials.
func TestCommandsHideURLSecrets(t *testing.T) {
	fake := clerktest.New(t)
	for _, dsn := range []string{
		"postgres://postgres:SECRET1/SECRET2@127.0.0.1:1/app",
		"postgres://postgres:SECRET1#SECRET2@127.0.0.1:1/app",
		"postgres://postgres:SECRET1?SECRET2@127.0.0.1:1/app",
		"postgres://postgres:SECRET1@SECRET2@127.0.0.1:1/app",
		"postgres://postgres@127.0.0.1:1/app?password=QSECRET&sslmode=bogus",
		"postgres://postgres@127.0.0.1:1/app?password=QSECRET&sslmode=disable",
	} {
		for _, cmd := range []string{"serve", "migrate", "check"} {
			env := map[string]string{"DATABASE_URL": dsn, "PORT": fmt.Sprint(freePort(t)),
				"CLERK_SECRET_KEY": clerktest.SecretKey, "CLERK_WEBHOOK_SIGNING_SECRET": testSecret,
				"CLERK_API_URL": strings.Replace(fake.URL, "http://", "http://apiuser:S3CRETPW@", 1)}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second) // serve waits for an unreachable database
			var out bytes.Buffer
			err := run(ctx, []string{cmd}, envOf(env), &out, &out)
			cancel()
			all := out.String() + fmt.Sprint(err)
			if strings.Contains(all, "SECRET") || strings.Contains(all, "apiuser") {
				t.Errorf("%s with DATABASE_URL %q printed a secret:\n%s", cmd, dsn, all)
			}
		}
	}
}

// check names the Clerk URL it reached without the credentials in it.
func TestCheckHidesClerkAPIURLCredentials(t *testing.T) {
	fake := clerktest.New(t)
	for _, target := range []string{strings.Replace(fake.URL, "http://", "http://apiuser:S3CRETPW@", 1), "http://apiuser:S3CRETPW@127.0.0.1:1"} {
		env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "u.db"),
			"CLERK_SECRET_KEY": clerktest.SecretKey, "CLERK_API_URL": target}
		var out bytes.Buffer
		err := run(t.Context(), []string{"check"}, envOf(env), &out, &out)
		if !strings.Contains(out.String(), "clerk api key") || strings.Contains(out.String(), "S3CRETPW") || strings.Contains(out.String(), "apiuser") {
			t.Errorf("check with CLERK_API_URL %s (%v):\n%s", target, err, out.String())
		}
	}
}
