// Package testenv skips tests that need what the machine lacks (Postgres, a
// pooler, files beside the clone), loudly: under CI=true, where every test
// must run, a skip fails instead, and Main ends a package's tests with one
// line saying how many were skipped and why, which go test alone shows only
// with -v.
//
// In a package whose tests skip this way:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// and at each skip site:
//
//	testenv.Skip(t, "Postgres", "set TEST_DATABASE_URL=postgres://user@host:5432/db")
package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu      sync.Mutex
	skipped = map[string]*count{} // by what
	order   []string              // whats in the order first skipped
)

type count struct {
	n   int
	fix string
}

// Skip skips t because it needs what (say "Postgres"), with fix saying how
// to provide it; t's skip message is "what test skipped: fix". Under
// CI=true it fails t instead. Main counts the skip.
func Skip(t testing.TB, what, fix string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s test not run, and CI=true (CI must run every test): %s", what, fix)
		return
	}
	mu.Lock()
	c := skipped[what]
	if c == nil {
		c = &count{fix: fix}
		skipped[what] = c
		order = append(order, what)
	}
	c.n++
	mu.Unlock()
	t.Skipf("%s test skipped: %s", what, fix)
}

// Main runs the package's tests (call it from TestMain; the test binary
// exits with their result). If Skip skipped any, it then writes one line:
// "handlers: 30 Postgres tests skipped: set TEST_DATABASE_URL=…; 11 …".
func Main(m *testing.M) {
	m.Run()
	line := summary()
	if line == "" {
		return
	}
	w, done := output()
	defer done()
	fmt.Fprintf(w, "%s: %s\n", strings.TrimSuffix(filepath.Base(os.Args[0]), ".test"), line)
}

// summary says how many tests Skip skipped, per need: "30 Postgres tests
// skipped: FIX; 1 pooler test skipped: FIX", or "" when none were.
func summary() string {
	mu.Lock()
	defer mu.Unlock()
	parts := make([]string, len(order))
	for i, what := range order {
		c := skipped[what]
		noun := "tests"
		if c.n == 1 {
			noun = "test"
		}
		parts[i] = fmt.Sprintf("%d %s %s skipped: %s", c.n, what, noun, c.fix)
	}
	return strings.Join(parts, "; ")
}

// output is where Main's line goes. go test prints a passing package's
// output only with -v (or -json), and in package list mode (go test ./...)
// drops it otherwise, so then the line goes to the terminal, when there is
// one, and to stderr when not.
func output() (io.Writer, func()) {
	if !testing.Verbose() {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			return tty, func() { tty.Close() }
		}
	}
	return os.Stderr, func() {}
}
