package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/usersync/usersync/internal/testenv"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// TestMain lets a test run this binary's main in a child process, and
// says at the end how many tests were skipped and why.
func TestMain(m *testing.M) {
	if args := os.Getenv("USERSYNC_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"usersync"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	testenv.Main(m)
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// SIGTERM during a burst: a request held in flight by a row lock finishes
// with 200, every acknowledged event is in the table, and the process
// exits 0.
func TestSIGTERMDuringBurst(t *testing.T) {
	dsn := modelstest.NewDSN(t, models.Postgres)
	db := modelstest.Open(t, models.Postgres, dsn)
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS=serve", "DATABASE_URL="+dsn,
		fmt.Sprintf("PORT=%d", port), "CLERK_WEBHOOK_SIGNING_SECRET="+testSecret, "LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitHealthy(t, fmt.Sprint(port), exited)
	url := fmt.Sprintf("http://127.0.0.1:%d/api/webhooks/clerk", port)

	// user_locked's row is locked by another session, so its update waits.
	if code := sendEvent(t, url, "msg_seed", "user_locked", 1); code != 200 {
		t.Fatalf("seed event answered %d", code)
	}
	sqlDB, _ := db.DB()
	lock, err := sqlDB.BeginTx(context.Background(), &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec("SELECT 1 FROM users WHERE id = 'user_locked' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	held := make(chan int, 1)
	go func() { held <- sendEvent(t, url, "msg_held", "user_locked", 2) }()

	var mu sync.Mutex
	var acked []string
	stop := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				id := fmt.Sprintf("msg_%d_%d", w, i)
				if sendEvent(t, url, id, fmt.Sprintf("user_%d_%d", w, i), 1) == 200 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	lock.Rollback() // the held request may now finish
	wg.Wait()
	if code := <-held; code != 200 {
		t.Errorf("the request in flight at SIGTERM answered %d, want 200", code)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("did not exit within 20 s of SIGTERM")
	}
	acked = append(acked, "msg_held")
	var recorded int64
	db.Model(&models.WebhookEvent{}).Where("svix_id IN ?", acked).Count(&recorded)
	if recorded != int64(len(acked)) || len(acked) < 10 {
		t.Errorf("%d acknowledged events, %d of them recorded", len(acked), recorded)
	}
}

// sendEvent posts a signed user event and returns the status (0: no answer).
func sendEvent(t *testing.T, url, msgID, userID string, updatedAt int64) int {
	body := []byte(fmt.Sprintf(`{"type":"user.updated","data":{"object":"user","id":%q,"updated_at":%d}}`, userID, updatedAt))
	wh, _ := svix.NewWebhook(testSecret)
	sig, _ := wh.Sign(msgID, time.Now(), body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("svix-id", msgID)
	req.Header.Set("svix-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("svix-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Bad configuration exits 2 with one line naming the variable; a runtime
// failure exits 1.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args, env string
		code      int
		stderrHas string
	}{
		{"migrate", "PORT=http", 2, "usersync: PORT: "},
		{"serve --bogus", "", 2, "-bogus"},
		{"migrate", "DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=2", 1, "usersync: "},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS="+tc.args, "LOG_LEVEL=error")
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.Contains(last, tc.stderrHas) {
			t.Errorf("usersync %s (%s): exit %d, last line %q; want exit %d and %q", tc.args, tc.env, code, last, tc.code, tc.stderrHas)
		}
	}
}

// .env fills in what the environment does not set; the environment wins.
func TestDotenv(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(path, []byte("PORT=9999\nLOG_LEVEL=debug\n# a comment\n"), 0o600)
	t.Setenv("LOG_LEVEL", "warn")
	getenv, err := envWithDotenv(path)
	if err != nil {
		t.Fatal(err)
	}
	if getenv("PORT") != "9999" || getenv("LOG_LEVEL") != "warn" || getenv("NOPE") != "" {
		t.Errorf("PORT=%q LOG_LEVEL=%q", getenv("PORT"), getenv("LOG_LEVEL"))
	}
	if _, err := envWithDotenv(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("a missing .env is fine, got %v", err)
	}
}
