//go:build !pprof

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// The product binary has no profiler: serve knows no --pprof flag and its
// help does not offer one (bench/run.sh builds with -tags pprof for that).
func TestServeHasNoProfilerFlag(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, envOf(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "pprof") {
		t.Errorf("serve --help mentions pprof:\n%s", stdout.String())
	}
	err := run(context.Background(), []string{"serve", "--pprof", "127.0.0.1:0"}, envOf(nil), &bytes.Buffer{}, &bytes.Buffer{})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "-pprof") {
		t.Errorf("serve --pprof: err = %v, want a usage error naming the flag", err)
	}
}
