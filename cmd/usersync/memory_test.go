//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// Memory bound of the issue: 256 senders each announcing a 1 MiB webhook,
// sending all but its last byte and stalling, keep a real `usersync serve`
// (built from this repository without the race detector, as it ships)
// under 160 MiB RSS, and a genuine delivery applies afterwards. Linux only:
// the RSS is read from /proc.
func TestStalledDeliveriesStayWithinMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and holds 256 connections")
	}
	const senders, announced, limitMiB = 256, 1 << 20, 160
	bin := filepath.Join(t.TempDir(), "usersync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LOG_LEVEL=error", fmt.Sprintf("PORT=%d", port),
		"DATABASE_URL=sqlite://" + filepath.Join(dir, "usersync.db"), "CLERK_WEBHOOK_SIGNING_SECRET=" + testSecret}
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

	var wg sync.WaitGroup
	held := &heldConns{}
	for i := range senders {
		wg.Go(func() { stallDelivery(t, addr, i, announced, held) })
	}
	// Sample for 6 s after the last sender connected: on a loaded machine
	// (the race detector, other packages' tests) some dials take seconds.
	peak := 0
	connected := time.Time{}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, vmRSSKiB(t, cmd.Process.Pid))
		if connected.IsZero() && held.count() == senders {
			connected = time.Now()
		}
		if !connected.IsZero() && time.Since(connected) > 6*time.Second {
			break
		}
	}
	held.closeAll()
	wg.Wait()
	t.Logf("peak RSS with %d stalled %d-byte deliveries: %d MiB", senders, announced, peak>>10)
	if peak>>10 >= limitMiB {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>10, limitMiB)
	}

	url := "http://" + addr + "/api/webhooks/clerk"
	code := 0
	for end := time.Now().Add(15 * time.Second); code != 200 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		code = sendEvent(t, url, "msg_genuine", "user_genuine", 7)
	}
	if code != 200 {
		t.Fatalf("genuine delivery after the stall answered %d\n%s", code, stderr.String())
	}
	db, err := models.Open(context.Background(), models.SQLite, filepath.Join(dir, "usersync.db"), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer models.Close(db)
	if u, err := modelstest.FindUser(context.Background(), db, "user_genuine"); err != nil || u.ClerkUpdatedAt != 7 {
		t.Fatalf("user_genuine = %+v, %v; want the genuine delivery applied", u, err)
	}
}

// heldConns are the stalled connections, closed together by the test; one
// dialled after that is closed at once.
type heldConns struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func (h *heldConns) add(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.Close()
		return false
	}
	h.conns = append(h.conns, c)
	return true
}

func (h *heldConns) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *heldConns) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, c := range h.conns {
		c.Close()
	}
}

// stallDelivery announces a body of size bytes, sends all but the last and
// leaves the connection open (held for the test to close).
func stallDelivery(t *testing.T, addr string, i, size int, held *heldConns) {
	c, err := net.DialTimeout("tcp", addr, 20*time.Second)
	if err != nil {
		t.Errorf("dial %d: %v", i, err)
		return
	}
	if !held.add(c) {
		return
	}
	head := fmt.Sprintf("POST /api/webhooks/clerk HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"svix-id: msg_stall_%d\r\nsvix-timestamp: %d\r\nsvix-signature: v1,c3RhbGw=\r\nContent-Length: %d\r\n\r\n",
		addr, i, time.Now().Unix(), size)
	body := append([]byte(head), `{"type":"user.created","data":{"id":"user_x","pad":"`...)
	body = append(body, bytes.Repeat([]byte("x"), size-len(body)+len(head)-1)...)
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	c.Write(body) // blocks while the server does not read; errors once it closes
}

// vmRSSKiB reads the resident set size of pid from /proc.
func vmRSSKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
