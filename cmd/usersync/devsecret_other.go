//go:build !unix

package main

import (
	"errors"
	"io/fs"
)

// checkPrivate refuses a file that is not a regular file; it cannot do the
// unix check's 0600 equivalent. Windows has no owner or group mode bits (Go
// reports 0666 for any writable file and os.Chmod only sets the read-only
// attribute): who may read the file is decided by its ACL, which the
// standard library can neither read nor set (that takes the security calls
// of golang.org/x/sys/windows). The file inherits its directory's ACL:
// private to the user under their profile, but readable by other local
// users in a directory such as C:\usersync; there, set
// CLERK_WEBHOOK_SIGNING_SECRET rather than rely on the development secret.
func checkPrivate(info fs.FileInfo) error {
	if !info.Mode().IsRegular() {
		return errors.New("is not a regular file")
	}
	return nil
}
