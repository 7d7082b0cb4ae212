package testenv

import (
	"fmt"
	"testing"
)

// fakeT records what Skip asks of a test instead of ending it.
type fakeT struct {
	testing.TB
	skipped, failed string
}

func (f *fakeT) Helper()                        {}
func (f *fakeT) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeT) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func reset() {
	mu.Lock()
	defer mu.Unlock()
	skipped, order = map[string]*count{}, nil
}

// Skips are counted per need, in the order first seen, and say how to
// provide what is missing.
func TestSkipCounts(t *testing.T) {
	t.Setenv("CI", "")
	reset()
	t.Cleanup(reset)
	if got := summary(); got != "" {
		t.Fatalf("summary with no skip = %q, want empty", got)
	}
	for _, what := range []string{"Postgres", "pooler", "Postgres"} {
		f := &fakeT{}
		Skip(f, what, "set "+what)
		if want := what + " test skipped: set " + what; f.skipped != want || f.failed != "" {
			t.Errorf("Skip(%s): skipped %q, failed %q; want skipped %q", what, f.skipped, f.failed, want)
		}
	}
	if got, want := summary(), "2 Postgres tests skipped: set Postgres; 1 pooler test skipped: set pooler"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

// Under CI=true nothing is skipped: the test fails, naming the fix.
func TestSkipFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	reset()
	t.Cleanup(reset)
	f := &fakeT{}
	Skip(f, "Postgres", "set TEST_DATABASE_URL")
	if f.skipped != "" || f.failed != "Postgres test not run, and CI=true (CI must run every test): set TEST_DATABASE_URL" {
		t.Errorf("skipped %q, failed %q; want a failure naming the fix", f.skipped, f.failed)
	}
	if got := summary(); got != "" {
		t.Errorf("summary = %q, want no skip counted", got)
	}
}
