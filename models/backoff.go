package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Dial back-off bounds: after a failed connection attempt, new attempts wait
// this long (doubling per failure, up to the max) before dialling again.
const (
	minDialBackoff = 100 * time.Millisecond
	maxDialBackoff = 5 * time.Second
)

// backoffConnector wraps a driver.Connector so that while the database
// refuses or cannot be reached, requests fail fast with the last error
// instead of each opening (and waiting on) a connection of its own: one
// caller at a time probes, after an exponentially growing pause.
type backoffConnector struct {
	driver.Connector
	maxConns int
	log      *slog.Logger

	mu       sync.Mutex
	lastErr  error
	failures int
	retryAt  time.Time
}

func newBackoffConnector(c driver.Connector, maxConns int, log *slog.Logger) *backoffConnector {
	return &backoffConnector{Connector: c, maxConns: maxConns, log: log}
}

// errBackingOff wraps the last connection error while a retry waits.
type errBackingOff struct{ last error }

func (e errBackingOff) Error() string {
	return "database unreachable (retrying shortly): " + e.last.Error()
}
func (e errBackingOff) Unwrap() error { return e.last }

func (b *backoffConnector) Connect(ctx context.Context) (driver.Conn, error) {
	b.mu.Lock()
	if b.lastErr != nil && time.Now().Before(b.retryAt) {
		err := errBackingOff{b.lastErr}
		b.mu.Unlock()
		return nil, err
	}
	if b.lastErr != nil {
		// This caller probes; others fail fast until it is done.
		b.retryAt = time.Now().Add(b.pause())
	}
	b.mu.Unlock()

	conn, err := b.Connector.Connect(ctx)

	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		if b.failures > 0 {
			b.log.Info("database connection restored", "failed_attempts", b.failures)
		}
		b.lastErr, b.failures = nil, 0
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, err // the caller gave up; says nothing about the database
	}
	b.failures++
	b.lastErr = err
	b.retryAt = time.Now().Add(b.pause())
	if tooManyClients(err) {
		b.log.Error("Postgres refused a connection: too many clients; lower DATABASE_MAX_CONNS "+
			"(replicas × DATABASE_MAX_CONNS must stay under the server's or pooler's limit) or raise that limit",
			"database_max_conns", b.maxConns, "failed_attempts", b.failures)
	} else if b.failures == 1 {
		b.log.Warn("database connection failed; retrying with back-off", "err", err)
	}
	return nil, err
}

// pause is the wait before the next attempt after b.failures failures.
func (b *backoffConnector) pause() time.Duration {
	return DialBackoff(b.failures)
}

// DialBackoff is step n (from 0) of the dial back-off: 100 ms, doubling per
// step, at most 5 s. serve waits for the database at start with the same
// steps.
func DialBackoff(n int) time.Duration {
	d := minDialBackoff << min(max(n, 0), 10)
	return min(d, maxDialBackoff)
}

// tooManyClients reports whether err is Postgres (53300) or a pooler
// refusing a connection for lack of slots.
func tooManyClients(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53300" {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "too many clients") || strings.Contains(msg, "no more connections allowed") ||
		strings.Contains(msg, "remaining connection slots are reserved")
}
