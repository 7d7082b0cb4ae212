package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The commands under cmd/ link no tooling: no test helpers (whose fake
// Clerk embeds a committed private key), no testing package and no
// profiler. The load tool lives in bench/loadgen, serve --pprof in a
// -tags pprof build.
func TestCommandsLinkNoTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/usersync/usersync/cmd/...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || pkg == "net/http/pprof" ||
			(strings.HasPrefix(pkg, "github.com/usersync/usersync/") && strings.HasSuffix(pkg, "test")) {
			t.Errorf("cmd/... links %s", pkg)
		}
	}
}
