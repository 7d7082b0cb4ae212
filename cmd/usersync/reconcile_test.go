package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// lockedBuffer collects a child process's log while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type replica struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan error // receives the exit once
	done   chan struct{}
}

// startReplica runs serve in a child process against dsn and the fake Clerk.
func startReplica(t *testing.T, dsn string, fake *clerktest.Fake, env ...string) *replica {
	t.Helper()
	port := freePort(t)
	r := &replica{cmd: exec.Command(os.Args[0]), log: &lockedBuffer{}, exited: make(chan error, 1), done: make(chan struct{})}
	r.cmd.Env = append(append(os.Environ(), "USERSYNC_TEST_MAIN_ARGS=serve", "DATABASE_URL="+dsn,
		fmt.Sprintf("PORT=%d", port), "CLERK_WEBHOOK_SIGNING_SECRET="+testSecret, "CLERK_SECRET_KEY="+clerktest.SecretKey,
		"CLERK_API_URL="+fake.URL, "LOG_FORMAT=json"), env...)
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.exited <- r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("replica %d log:\n%s", r.cmd.Process.Pid, r.log.String())
		}
	})
	waitHealthy(t, strconv.Itoa(port), r.exited)
	return r
}

// pass is one reconcile pass a replica logged.
type pass struct {
	pid        int
	kind       string
	start, end time.Time
}

func (r *replica) passes(t *testing.T) []pass {
	t.Helper()
	var out []pass
	sc := bufio.NewScanner(strings.NewReader(r.log.String()))
	for sc.Scan() {
		var l struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Kind    string    `json:"kind"`
			Elapsed string    `json:"elapsed"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "reconcile pass done" {
			continue
		}
		d, err := time.ParseDuration(l.Elapsed)
		if err != nil {
			t.Fatalf("elapsed %q: %v", l.Elapsed, err)
		}
		out = append(out, pass{pid: r.cmd.Process.Pid, kind: l.Kind, start: l.Time.Add(-d), end: l.Time})
	}
	return out
}

// waitFor polls cond every 50 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

func clerkUpdatedAt(db *gorm.DB, id string) int64 {
	var at int64
	db.Raw("SELECT clerk_updated_at FROM users WHERE id = ?", id).Scan(&at)
	return at
}

// Two replicas behind PgBouncer in transaction mode share one database:
// the first pass imports Clerk's users, a missed update is repaired within
// three intervals, passes never overlap, and when the replica holding the
// claim is killed mid-pass the other takes over within two intervals.
func TestReplicasReconcileOneAtATimeAndSurviveSIGKILL(t *testing.T) {
	const interval = time.Second
	dsn := modelstest.NewDSN(t, models.Postgres)
	pooled := modelstest.PoolerURLFor(t, dsn)
	db := modelstest.Open(t, models.Postgres, dsn)
	fake := clerktest.New(t)
	for i := range 20 {
		fake.PutUser(clerktest.User(fmt.Sprintf("user_%02d", i), time.Now().Add(-time.Hour).UnixMilli(), "", nil))
	}
	// Each request takes 150 ms, so a pass lasts long enough that two
	// replicas ticking every second would overlap without the claim.
	fake.SetLatency(150 * time.Millisecond)
	env := []string{"SYNC_RECONCILE_INTERVAL=" + interval.String(), "CLERK_API_RATE=100/1s"}
	a, b := startReplica(t, pooled, fake, env...), startReplica(t, pooled, fake, env...)
	replicas := map[int]*replica{a.cmd.Process.Pid: a, b.cmd.Process.Pid: b}

	var n int64
	waitFor(t, 10*time.Second, "the first pass imports every user", func() bool {
		db.Raw("SELECT count(*) FROM users WHERE sync_source = 'reconcile'").Scan(&n)
		return n == 20
	})

	// Both replicas tick every second; let them run a few passes.
	waitFor(t, 10*interval, "four passes", func() bool { return len(a.passes(t))+len(b.passes(t)) >= 4 })

	// A change whose webhook never came.
	missed := time.Now().UnixMilli()
	fake.PutUser(clerktest.User("user_03", missed, "", nil))
	took := waitFor(t, 3*interval, "the missed update is repaired", func() bool { return clerkUpdatedAt(db, "user_03") == missed })
	t.Logf("missed update repaired after %v", took)

	// Kill whichever replica holds the claim during a pass.
	var victim *replica
	waitFor(t, 5*interval, "a replica holds the claim", func() bool {
		st, err := models.ReadReconcileState(t.Context(), db)
		if err != nil || st.Holder == "" {
			return false
		}
		pid, _ := strconv.Atoi(strings.Split(st.Holder, "/")[1])
		victim = replicas[pid]
		return victim != nil
	})
	victim.cmd.Process.Kill()
	<-victim.done
	killedAt := time.Now()
	missed = time.Now().UnixMilli()
	fake.PutUser(clerktest.User("user_04", missed, "", nil))
	took = waitFor(t, 2*interval+2*time.Second, "the survivor repairs the next missed update", func() bool {
		return clerkUpdatedAt(db, "user_04") == missed
	})
	t.Logf("after the holder was killed, the next missed update was repaired in %v", took)
	survivor := a
	if victim == a {
		survivor = b
	}
	waitFor(t, 2*interval, "the survivor finishes passes after the kill", func() bool {
		after := 0
		for _, p := range survivor.passes(t) {
			if p.start.After(killedAt) {
				after++
			}
		}
		return after >= 2
	})

	var all []pass
	for _, r := range replicas {
		all = append(all, r.passes(t)...)
	}
	for i, p := range all {
		for _, q := range all[i+1:] {
			if p.pid != q.pid && p.start.Before(q.end) && q.start.Before(p.end) {
				t.Errorf("passes overlap: %+v and %+v", p, q)
			}
		}
	}
	if len(all) < 6 {
		t.Errorf("%d passes logged, want at least 6", len(all))
	}
}
