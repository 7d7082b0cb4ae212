//go:build unix

package models_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// The embedded database and its -wal and -shm files hold personal data:
// they are created readable by their owner only whatever the umask, and a
// database created earlier with a wider mode is tightened when opened.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, under which files are 0644
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	widened := filepath.Join(dir, "old.db")
	if err := os.WriteFile(widened, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fresh, widened} {
		db := modelstest.Open(t, models.SQLite, path)
		if _, err := models.ApplySnapshot(context.Background(), db, snap("user_1", 1), models.SourceBackfill); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s mode = %04o, want 0600", filepath.Base(p), perm)
			}
		}
	}
}
