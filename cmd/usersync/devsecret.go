package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/usersync/usersync/config"
)

// devSecretFile holds the development signing secret, beside the embedded
// database (or in the working directory when the database is Postgres).
const devSecretFile = "usersync.webhook-secret"

func devSecretPath(cfg config.Config) string {
	dir := "."
	if path := cfg.Database.SQLitePath(); path != "" {
		dir = filepath.Dir(path)
	}
	return filepath.Join(dir, devSecretFile)
}

// loadOrCreateDevSecret reads the secret at path, creating it with a random
// key (readable by the owner only) if it does not exist yet. serve and
// webhook send both call it; whichever runs first creates it. The file is
// written under a temporary name and linked into place, so a reader never
// sees it half-written and two creators cannot both win.
func loadOrCreateDevSecret(path string) (string, error) {
	if secret, err := readDevSecret(path); !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".usersync-secret-*")
	if err != nil {
		return "", fmt.Errorf("create development signing secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, 32)
	rand.Read(key)
	_, err = tmp.WriteString("whsec_" + base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("write development signing secret: %w", err)
	}
	return readDevSecret(path)
}

// readDevSecret reads the secret, refusing a file that others could have
// read or planted: one readable or writable by group or others, or owned by
// another user. Whoever knows the secret can forge webhooks.
func readDevSecret(path string) (string, error) {
	// O_NONBLOCK: opening a FIFO planted here would otherwise wait for a
	// writer, and serve would hang before its signal handling; checkPrivate
	// then refuses anything but a regular file, before a byte is read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := checkPrivate(info); err != nil {
		return "", fmt.Errorf("development signing secret %s %v; delete it to make a new one, or chmod 600 it if it is yours", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(b))
	if err := config.CheckWebhookSecret(secret); err != nil {
		return "", fmt.Errorf("development signing secret in %s: %v (delete the file to make a new one)", path, err)
	}
	return secret, nil
}
