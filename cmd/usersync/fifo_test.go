//go:build linux || darwin

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO planted as the development secret is refused at once, by the
// secret loader and by serve (it blocked in open(2) before, deaf to SIGTERM).
func TestDevSecretFIFOIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, devSecretFile)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := loadOrCreateDevSecret(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Fatalf("err = %v, want one saying it is not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("loading the secret blocked on the FIFO")
	}
	env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(dir, "usersync.db"), "PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "error"}
	go func() {
		done <- run(t.Context(), []string{"serve"}, envOf(env), &strings.Builder{}, &strings.Builder{})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Fatalf("serve: err = %v, want one saying the secret is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve blocked on the FIFO")
	}
}
