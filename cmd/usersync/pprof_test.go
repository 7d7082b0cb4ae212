//go:build pprof

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A build with -tags pprof (bench/run.sh's PPROF option) offers serve
// --pprof ADDR and serves the profiler there, not on PORT.
func TestServePprof(t *testing.T) {
	var help bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, envOf(nil), &help, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(help.String(), "-pprof") {
		t.Errorf("serve --help does not list -pprof:\n%s", help.String())
	}
	dir := t.TempDir()
	env := map[string]string{"PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "warn",
		"DATABASE_URL": "sqlite://" + filepath.Join(dir, "usersync.db"), "CLERK_WEBHOOK_SIGNING_SECRET": testSecret}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--pprof", pprofAddr}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	waitHealthy(t, env["PORT"], served)
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /debug/pprof/ = %d, want 200", resp.StatusCode)
	}
	if resp, err := http.Get("http://127.0.0.1:" + env["PORT"] + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the profiler answers on PORT too")
		}
	}
}
