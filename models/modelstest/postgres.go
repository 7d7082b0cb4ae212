package modelstest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/usersync/usersync/internal/testenv"
)

// Cluster is a throwaway Postgres server a test owns, so it can stop and
// start it (fault tests). It runs from the machine's Postgres binaries in a
// temporary directory, on a port below 32768.
type Cluster struct {
	t      testing.TB
	bin    string
	dir    string
	Port   int
	asUser string // run the server as this user (initdb refuses root)
}

// StartCluster initialises and starts a cluster, removed when the test ends.
// Without Postgres binaries the test is skipped (under CI=true it fails).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := postgresBinDir()
	if bin == "" {
		testenv.Skip(t, "fault", "no Postgres server binaries (initdb, pg_ctl) on this machine")
	}
	dir, err := os.MkdirTemp("", "usersync-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin, dir: dir, Port: freeLowPort(t)}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
		u, err := user.Lookup(c.asUser)
		if err != nil {
			t.Fatalf("running as root needs a postgres user to run the server: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate", "-w")
		os.RemoveAll(dir)
	})
	c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	c.Start()
	return c
}

// URL is the cluster's connection string.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", c.Port, c.dir)
	c.pgctlOrFail("start", "-w", "-t", "30", "-o", opts, "-l", filepath.Join(c.dir, "server.log"))
}

// Stop shuts the server down (fast: open sessions are ended).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.pgctlOrFail("stop", "-m", "fast", "-w")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) pgctlOrFail(args ...string) {
	c.t.Helper()
	if out, err := c.pgctl(args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("pg_ctl %v: %v\n%s\n%s", args, err, out, log)
	}
}

func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	return c.command("pg_ctl", append([]string{"-D", c.data()}, args...)...).CombinedOutput()
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.command(name, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// postgresBinDir finds initdb and pg_ctl: pg_config's bindir, or Debian's
// versioned directories.
func postgresBinDir() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := string(out[:len(out)-1])
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// freeLowPort finds a free port below 32768 (outside Linux's ephemeral range,
// so a restarted server gets its port back).
func freeLowPort(t testing.TB) int {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below 32768")
	return 0
}
