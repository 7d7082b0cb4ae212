package main

import (
	"io/fs"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
)

// The garbage collector's settings are Go's defaults (GOGC=100, no memory
// limit) unless the operator sets GOGC or GOMEMLIMIT, with one exception:
// in a container with a memory limit and no GOMEMLIMIT, the limit the
// collector works towards is 90 % of the container's, so the heap is
// collected harder before the kernel would kill the process, rather than
// only at twice the live heap. Nothing here is tuned to one benchmark; see
// bench/README.md for what GOGC buys on the webhook path.

// memoryLimitShare is the part of the container's limit given to Go's heap
// and runtime; the rest covers what the runtime does not count (SQLite's C
// memory is Go memory with modernc, but thread stacks and the binary are not).
const memoryLimitShare = 0.9

// setMemoryLimit applies GOMEMLIMIT's derived default and logs what it chose.
func setMemoryLimit(getenv func(string) string, cgroup fs.FS, log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return // the runtime has read it already
	}
	limit, ok := cgroupMemoryLimit(cgroup)
	if !ok {
		return
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	log.Info("memory limit for the garbage collector derived from the container's (GOMEMLIMIT overrides)",
		"container_bytes", limit, "gomemlimit_bytes", soft)
}

// cgroupMemoryLimit reads the container's memory limit from the cgroup
// filesystem (mounted at /sys/fs/cgroup): memory.max on cgroup v2,
// memory/memory.limit_in_bytes on v1. No limit ("max", or v1's huge
// number) or no cgroup gives false.
func cgroupMemoryLimit(cgroup fs.FS) (int64, bool) {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(cgroup, name)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
