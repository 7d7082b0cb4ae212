package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The reproduction against a real serve: 512 connections announce
// a 1 MiB webhook and send only their headers; `usersync webhook send`
// meanwhile is answered 200 at once (it waited 2 s for a 503 when the
// budget was reserved for the announced length).
func TestHeaderOnlyFloodWebhookSend(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	env := []string{"DATABASE_URL=sqlite://" + filepath.Join(dir, "usersync.db"),
		fmt.Sprintf("PORT=%d", port), "CLERK_WEBHOOK_SIGNING_SECRET=" + testSecret, "LOG_LEVEL=error"}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS=serve"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	waitHealthy(t, fmt.Sprint(port), exited)

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := range 512 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /api/webhooks/clerk HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
	}
	time.Sleep(500 * time.Millisecond) // as the reproduction: every flood request is reading its body

	getenv := func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	var out bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"webhook", "send"}, getenv, &out, &out)
	took := time.Since(start)
	if err != nil || !strings.HasPrefix(out.String(), `200 {"outcome":"applied"}`) || took > 1500*time.Millisecond {
		t.Fatalf("webhook send during the flood: %v after %s: %s\n%s", err, took.Round(time.Millisecond), out.String(), stderr.String())
	}
}
