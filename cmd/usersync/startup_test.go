package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// serve started while nothing listens at the database's address: it is
// alive but not ready, answers a webhook 503 (nothing acknowledged), and
// once the database can be reached (a forwarder to the real Postgres starts
// on that address) it migrates, turns ready and applies a signed webhook.
func TestServeWaitsForDatabase(t *testing.T) {
	direct := modelstest.NewDSN(t, models.Postgres)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	if u.Port() == "" {
		upstream = net.JoinHostPort(u.Hostname(), "5432")
	}
	dbPort := freePort(t)
	u.Host = fmt.Sprintf("127.0.0.1:%d", dbPort)
	env := map[string]string{"DATABASE_URL": u.String(), "PORT": fmt.Sprint(freePort(t)),
		"CLERK_WEBHOOK_SIGNING_SECRET": testSecret, "LOG_LEVEL": "warn"}
	base := "http://127.0.0.1:" + env["PORT"]

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	var serveLog bytes.Buffer // read only after serve returns
	go func() { served <- run(ctx, []string{"serve"}, envOf(env), &bytes.Buffer{}, &serveLog) }()
	waitStatus(t, base+"/healthz", 200, 5*time.Second, served)

	for _, tc := range []struct {
		method, path     string
		status           int
		body, retryAfter string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`, ""},
		{"GET", "/readyz", 503, `{"error":"database unavailable"}`, ""},
		{"POST", "/api/webhooks/clerk", 503, `{"error":"database unavailable, retry later"}`, "5"},
		{"POST", "/api/user/sync", 503, `{"error":"database unavailable, retry later"}`, "5"},
	} {
		var status int
		var body string
		var h http.Header
		if tc.path == "/api/webhooks/clerk" {
			status, body, h = postEvent(t, base+tc.path, "msg_waiting", "user_waiting", 1)
		} else {
			status, body, h = do(t, tc.method, base+tc.path)
		}
		if status != tc.status || body != tc.body || h.Get("Retry-After") != tc.retryAfter {
			t.Errorf("%s %s while waiting = %d %q (Retry-After %q), want %d %q (%q)",
				tc.method, tc.path, status, body, h.Get("Retry-After"), tc.status, tc.body, tc.retryAfter)
		}
	}

	startForwarder(t, fmt.Sprintf("127.0.0.1:%d", dbPort), upstream)
	waitStatus(t, base+"/readyz", 200, 6*time.Second, served)
	if status, body, _ := postEvent(t, base+"/api/webhooks/clerk", "msg_ready", "user_ready", 1); status != 200 || body != `{"outcome":"applied"}` {
		t.Fatalf("webhook once ready = %d %q, want 200 applied", status, body)
	}
	db := modelstest.Open(t, models.Postgres, direct)
	if _, err := modelstest.FindUser(context.Background(), db, "user_ready"); err != nil {
		t.Fatalf("the webhook's user is not in the table: %v", err)
	}
	var waiting int64
	db.Model(&models.WebhookEvent{}).Where("svix_id = 'msg_waiting'").Count(&waiting)
	if waiting != 0 {
		t.Error("the delivery answered 503 while waiting was recorded")
	}

	stop()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(serveLog.String(), `"level":"WARN","msg":"database not available at start`) {
		t.Errorf("serve did not log the refusals at WARN:\n%s", serveLog.String())
	}
}

// The wait logs each refusal at WARN with the error and the back-off steps,
// never the password, and ends without an error when ctx does.
func TestWaitForDBLogsRefusalsWithoutPassword(t *testing.T) {
	env := map[string]string{"DATABASE_URL": fmt.Sprintf("postgres://app:hunter2@127.0.0.1:%d/app?sslmode=disable", freePort(t))}
	cfg := mustConfig(t, env)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	db, err := waitForDB(ctx, cfg, log)
	if db != nil || err != nil {
		t.Fatalf("waitForDB after ctx ended = %v, %v; want nil, nil", db, err)
	}
	out := logs.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("the log carries the password:\n%s", out)
	}
	for _, want := range []string{`"level":"WARN"`, `"retry_in":"100ms"`, `"retry_in":"200ms"`, "connection refused", "stopped while waiting for the database"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
}

// SIGTERM while serve waits for the database: the real binary exits 0 at
// once, as after a normal shutdown.
func TestSIGTERMWhileWaitingForDatabase(t *testing.T) {
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS=serve", "LOG_LEVEL=warn", fmt.Sprintf("PORT=%d", port),
		fmt.Sprintf("DATABASE_URL=postgres://app@127.0.0.1:%d/app?sslmode=disable", freePort(t)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitStatus(t, base+"/healthz", 200, 10*time.Second, exited)
	if status, body, _ := do(t, "GET", base+"/readyz"); status != 503 || body != `{"error":"database unavailable"}` {
		t.Errorf("/readyz while waiting = %d %q", status, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("did not exit within 5 s of SIGTERM")
	}
}

// Failures that waiting cannot fix end serve at once with the error (exit
// 1), as before: an unknown role and a missing database on a real server.
func TestServeExitsAtOnceWhenWaitingCannotHelp(t *testing.T) {
	base, err := url.Parse(modelstest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	noRole, noDB := *base, *base
	noRole.User = url.User("usersync_no_such_role")
	noDB.Path = "/usersync_no_such_database"
	for name, tc := range map[string]struct {
		url  url.URL
		want string
	}{
		"unknown role":     {noRole, "SQLSTATE 28"},
		"missing database": {noDB, "SQLSTATE 3D000"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			env := map[string]string{"DATABASE_URL": tc.url.String(), "PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "error"}
			start := time.Now()
			err := run(context.Background(), []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
			var u usageError
			if err == nil || errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want a runtime error containing %q", err, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("serve took %v to give up, want at once", d)
			}
		})
	}
}

func TestWaitable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("connect: %w", &pgconn.PgError{Code: code}) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("connect: %w", refused), true},
		{"connection dropped", fmt.Errorf("migrate: %w", io.ErrUnexpectedEOF), true},
		{"starting up", pg("57P03"), true},
		{"shutting down", pg("57P01"), true},
		{"too many clients", pg("53300"), true},
		{"connection failure", pg("08006"), true},
		{"PgBouncer cannot reach the server", pg("08P01"), true},
		{"wrong password", pg("28P01"), false},
		{"unknown role", pg("28000"), false},
		{"no such database", pg("3D000"), false},
		{"permission denied", pg("42501"), false},
		{"syntax error in a migration", pg("42601"), false},
		{"old server", errors.New("the server runs Postgres 11: usersync needs Postgres 12 or later"), false},
	} {
		if got := waitable(tc.err); got != tc.want {
			t.Errorf("waitable(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// startForwarder pipes connections to addr through to upstream until the
// test ends.
func startForwarder(t *testing.T, addr, upstream string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { io.Copy(up, c); up.Close() })
			wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
}

// waitStatus polls url until it answers want; it fails the test if the
// process under test ends first or the time runs out.
func waitStatus(t *testing.T, url string, want int, within time.Duration, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %v", url, want, within)
}

// do sends a request without a body and returns the status, the body
// without its trailing newline, and the headers.
func do(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return send(t, req)
}

// postEvent posts a user event signed with testSecret.
func postEvent(t *testing.T, url, msgID, userID string, updatedAt int64) (int, string, http.Header) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"type":"user.updated","data":{"object":"user","id":%q,"updated_at":%d}}`, userID, updatedAt))
	wh, err := svix.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(msgID, now, body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("svix-id", msgID)
	req.Header.Set("svix-timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("svix-signature", sig)
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSuffix(string(b), "\n"), resp.Header
}

// The listener holds at most its cap of connections: with the cap's worth
// open and idle, one more is not served until one of them closes.
func TestListenerCapsConnections(t *testing.T) {
	const limit = 8
	port := freePort(t)
	srv, err := listenLimited(port, limit, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var held []net.Conn
	for range limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		t.Cleanup(func() { c.Close() })
	}
	extra, err := net.Dial("tcp", addr) // completes in the kernel's accept queue
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := http.ReadResponse(bufio.NewReader(extra), nil); err == nil {
		t.Fatal("a connection beyond the cap was served")
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after one closed: %v, %v; want the waiting connection served", resp, err)
	}
}

// A port another process holds fails the start with an error naming PORT,
// the variable that chooses it.
func TestBusyPortNamesPORT(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	env := map[string]string{"PORT": port, "LOG_LEVEL": "error", "DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "u.db")}
	err = run(context.Background(), []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "PORT: cannot listen on port "+port+" ") {
		t.Fatalf("serve on a busy port: err = %v, want one naming PORT and %s", err, port)
	}
}
