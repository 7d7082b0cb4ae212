package models

import (
	"bytes"
	"context"
	"fmt"
	"github.com/usersync/usersync/internal/testenv"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// While the database cannot be reached, a burst of requests dials it a few
// times, not once per request: here a listener that hangs up on every
// connection counts the dials while 200 requests arrive over the 300 ms
// after a failed one.
func TestDialBacksOffWhileDatabaseIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	pool, err := openPostgresPool(context.Background(), fmt.Sprintf("postgres://u@%s/db?sslmode=disable&connect_timeout=2&default_query_exec_mode=cache_describe", ln.Addr()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pool.PingContext(context.Background()) == nil {
		t.Fatal("ping succeeded against a listener that hangs up")
	}
	first := dials.Load()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 1500 * time.Microsecond)
			if pool.PingContext(context.Background()) != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 200 {
		t.Fatalf("%d of 200 pings failed, want all", failed.Load())
	}
	// After a failure the next probe waits 200 ms, then 400 ms: two more
	// dials in 300 ms (one of slack for a slow machine).
	if n := dials.Load() - first; n > 3 {
		t.Errorf("%d dials for 200 requests over 300 ms after a failed one; want at most 3", n)
	}
}

// Postgres refusing a connection for lack of slots (53300, here a role's
// CONNECTION LIMIT) is logged once as what it is, with the setting to change.
func TestTooManyClientsIsLoggedClearly(t *testing.T) {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		testenv.Skip(t, "Postgres", "set TEST_DATABASE_URL=postgres://user@host:5432/db (a role that may CREATE DATABASE)")
	}
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	role := fmt.Sprintf("usersync_limited_%d", time.Now().UnixNano()%1e9)
	if _, err := admin.Exec(context.Background(), "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "DROP ROLE "+role)

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", role, cfg.Host, cfg.Port, cfg.Database)
	db, err := Open(context.Background(), Postgres, dsn, Options{MaxConns: 3, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer Close(db)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { db.Exec("SELECT pg_sleep(0.3)") })
	}
	wg.Wait()
	want := "Postgres refused a connection: too many clients; lower DATABASE_MAX_CONNS"
	if got := logs.String(); !strings.Contains(got, want) || !strings.Contains(got, "database_max_conns=3") {
		t.Errorf("log = %q, want a line with %q and database_max_conns=3", got, want)
	}
}
