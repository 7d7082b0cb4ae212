package main

import (
	"testing"
	"testing/fstest"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		files fstest.MapFS
		want  int64
		ok    bool
	}{
		"v2 limit":     {fstest.MapFS{"memory.max": {Data: []byte("268435456\n")}}, 256 << 20, true},
		"v2 unlimited": {fstest.MapFS{"memory.max": {Data: []byte("max\n")}}, 0, false},
		"v1 limit":     {fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("134217728\n")}}, 128 << 20, true},
		"v1 unlimited": {fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")}}, 0, false},
		"no cgroup":    {fstest.MapFS{}, 0, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := cgroupMemoryLimit(tc.files)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
