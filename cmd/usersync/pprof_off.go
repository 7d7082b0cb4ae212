//go:build !pprof

package main

import (
	"flag"
	"log/slog"
)

// profilerFlag registers nothing: the product binary has no profiler. A
// build with -tags pprof adds serve's --pprof flag (pprof.go).
func profilerFlag(*flag.FlagSet) func(*slog.Logger) {
	return func(*slog.Logger) {}
}
