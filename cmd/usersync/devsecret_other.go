//go:build !unix

package main

import (
	"errors"
	"io/fs"
)

// checkPrivate refuses a file that is not a regular file. Windows has no
// owner or group mode bits to check (Go reports 0666 for any writable
// file): who may read the file is decided by the ACL it inherits from its
// directory, which for a checkout under the user's profile is that user.
func checkPrivate(info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return errors.New("is not a regular file")
	}
	return nil
}
