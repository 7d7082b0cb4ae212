package models

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// privateFileMode is the mode of the embedded database: it holds personal
// data, so only its owner may read it.
const privateFileMode = 0o600

// privateSQLiteFiles creates the SQLite database file at dsn readable by its
// owner only, and tightens an existing one and its -wal and -shm files to
// that mode. SQLite gives the -wal and -shm files the database file's mode,
// so creating the database 0600 first keeps all three private whatever the
// umask. In-memory databases are left alone.
func privateSQLiteFiles(dsn string) error {
	path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if path == "" || strings.HasPrefix(path, ":memory:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, privateFileMode)
	if err != nil {
		return fmt.Errorf("create SQLite database %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, privateFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s readable by its owner only: %w", p, err)
		}
	}
	return nil
}
