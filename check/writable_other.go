//go:build !unix

package check

import (
	"errors"
	"os"
)

// writable reports whether path may be written, from its mode bits: on
// Windows the read-only attribute is what refuses writes, and opening the
// file to find out would take a lock the service may hold.
func writable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.Mode().Perm()&0o200 == 0 {
		return errors.New("read-only")
	}
	return nil
}
