package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// A round is statements sent to the database together: the write path's,
// and the reads of login-time syncs. On Postgres a round is one round trip:
// a pgx batch on the transaction's connection, which also carries the
// transaction's BEGIN when it is the first round. A webhook batch then
// costs three round trips (record the events and read their users; write
// the users; commit) instead of five. Elsewhere (SQLite) the statements run
// one after another.
type round []statement

// statement is one statement of a round and what reads its rows.
type statement struct {
	name string // what it does, for errors: "read 12 users"
	sql  string
	args []any
	// lookup marks a statement that finds rows by id or email: it is
	// planned with its values each time (see planLookupsEachTime in sql.go).
	lookup bool
	read   func(rows) error // nil: the rows are not needed
}

// rows are a statement's results: *sql.Rows and pgx.Rows both are.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func (r *round) add(s statement) { *r = append(*r, s) }

// send runs the round's statements in order in tx and hands each one's rows
// to its read function; the first error ends the round.
func (r round) send(tx *gorm.DB) error {
	if len(r) == 0 {
		return nil
	}
	if t, ok := tx.Statement.ConnPool.(*pgTx); ok {
		i, err := t.send(tx.Statement.Context, r)
		if err != nil {
			return fmt.Errorf("%s: %w", r[i].name, translate(tx, err))
		}
		return nil
	}
	for _, s := range r {
		if err := runStatement(tx, s); err != nil {
			return fmt.Errorf("%s: %w", s.name, translate(tx, err))
		}
	}
	return nil
}

func runStatement(tx *gorm.DB, s statement) error {
	args := s.args
	if s.lookup {
		args = lookupArgs(DialectOf(tx), args...)
	}
	rs, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, s.sql, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	return readAll(rs, s.read)
}

// readAll hands rs to read, then reads what it left.
func readAll(rs rows, read func(rows) error) error {
	if read != nil {
		if err := read(rs); err != nil {
			return err
		}
	}
	for rs.Next() {
	}
	return rs.Err()
}

// Within a batch pgx sends every statement in the connection's mode, so a
// lookup is planned with its values by switching the plan cache to custom
// plans around it, for this transaction only.
const (
	customPlans  = "SET LOCAL plan_cache_mode = force_custom_plan"
	defaultPlans = "SET LOCAL plan_cache_mode TO DEFAULT"
)

// pgTx is a Postgres transaction on one connection of GORM's pool, begun by
// its first round rather than by a round trip of its own. It is a
// gorm.ConnPool, so statements GORM builds (the organization tables) run
// in it too; the first of those, if it comes before any round, sends BEGIN
// on its own.
type pgTx struct {
	conn  *sql.Conn
	begun bool // BEGIN has been sent, COMMIT not yet
	// commitWithRound ends the transaction in the same batch as its round
	// (readRound: reads that need no check before committing).
	commitWithRound bool
}

// runPgTx runs fn in a pgTx on a connection of db's pool and commits if fn
// succeeds. ok is false, and nothing has run, when db's connections are not
// pgx's: the caller then uses GORM's own transaction.
func runPgTx(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) (ok bool, err error) {
	pool, isPool := db.Statement.ConnPool.(*sql.DB)
	if !isPool || DialectOf(db) != Postgres {
		return false, nil
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return true, translate(db, err)
	}
	// A connection left inside a transaction is discarded by the pool
	// (pgx's ResetSession), never reused.
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		if _, isPgx := dc.(*stdlib.Conn); !isPgx {
			return errNotPgx
		}
		return nil
	}); err != nil {
		return false, nil
	}
	t := &pgTx{conn: conn}
	tx := db.Session(&gorm.Session{NewDB: true, Context: ctx})
	tx.Statement.ConnPool = t
	if err := fn(tx); err != nil {
		t.rollback(ctx)
		return true, err
	}
	return true, translate(db, t.commit(ctx))
}

// commit commits, and fails if Postgres rolled back instead (a statement
// of the transaction had failed).
func (t *pgTx) commit(ctx context.Context) error {
	if !t.begun {
		return nil // nothing ran
	}
	return t.conn.Raw(func(dc any) error {
		return committed(dc.(*stdlib.Conn).Conn().Exec(ctx, "commit"))
	})
}

var errNotPgx = errors.New("not a pgx connection")

// send runs a round as one pgx batch, BEGIN first if the transaction has
// not begun, and returns the index of the statement that failed. The
// batch's statements are prepared once per connection (or sent unnamed
// through a pooler), as the pool's mode says.
func (t *pgTx) send(ctx context.Context, r round) (failed int, err error) {
	err = t.conn.Raw(func(dc any) error {
		conn := dc.(*stdlib.Conn).Conn()
		b := &pgx.Batch{}
		if !t.begun {
			b.Queue("begin")
		}
		for _, s := range r {
			if s.lookup {
				b.Queue(customPlans)
			}
			b.Queue(s.sql, s.args...)
			if s.lookup {
				b.Queue(defaultPlans)
			}
		}
		if t.commitWithRound {
			b.Queue("commit")
		}
		res := conn.SendBatch(ctx, b)
		var err error
		failed, err = t.readBatch(res, r)
		if closeErr := res.Close(); err == nil {
			err = closeErr
		}
		return err
	})
	return failed, err
}

func (t *pgTx) readBatch(res pgx.BatchResults, r round) (int, error) {
	if !t.begun {
		if _, err := res.Exec(); err != nil {
			return 0, err
		}
		t.begun = true
	}
	for i, s := range r {
		if s.lookup {
			if _, err := res.Exec(); err != nil {
				return i, err
			}
		}
		rs, err := res.Query()
		if err == nil {
			err = readAll(rs, s.read)
		}
		rs.Close()
		if err != nil {
			return i, err
		}
		if s.lookup {
			if _, err := res.Exec(); err != nil {
				return i, err
			}
		}
	}
	if t.commitWithRound {
		if err := committed(res.Exec()); err != nil {
			return len(r) - 1, err
		}
		t.begun = false
	}
	return len(r) - 1, nil
}

// committed checks a COMMIT's answer: Postgres answers ROLLBACK, without an
// error, when a statement of the transaction had failed.
func committed(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("commit: %s", tag)
	}
	return err
}

// readRound runs a round of reads outside the caller's transactions: on
// Postgres in one round trip, BEGIN and COMMIT included, so its lookups can
// be planned with their values (SET LOCAL); elsewhere one after another.
func readRound(ctx context.Context, db *gorm.DB, r round) error {
	ok, err := runPgTx(ctx, db, func(tx *gorm.DB) error {
		tx.Statement.ConnPool.(*pgTx).commitWithRound = true
		return r.send(tx)
	})
	if ok {
		return err
	}
	return r.send(db.WithContext(ctx))
}

// rollback ends the transaction after a failure. A connection it cannot
// roll back is left inside the transaction, and the pool discards it.
func (t *pgTx) rollback(ctx context.Context) {
	if t.begun {
		_, _ = t.conn.ExecContext(context.WithoutCancel(ctx), "rollback")
	}
}

// begin sends BEGIN on its own, for a statement that is not in a round.
func (t *pgTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	if _, err := t.conn.ExecContext(ctx, "begin"); err != nil {
		return err
	}
	t.begun = true
	return nil
}

// The gorm.ConnPool methods: each runs its statement in the transaction.

func (t *pgTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.conn.PrepareContext(ctx, query)
}

func (t *pgTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.conn.ExecContext(ctx, query, args...)
}

func (t *pgTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext cannot return an error of its own: when BEGIN fails, the
// query is made with a context already done, so the row carries an error
// and nothing runs outside the transaction.
func (t *pgTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := t.begin(ctx); err != nil {
		done, cancel := context.WithCancelCause(ctx)
		cancel(err)
		return t.conn.QueryRowContext(done, query, args...)
	}
	return t.conn.QueryRowContext(ctx, query, args...)
}

var _ gorm.ConnPool = (*pgTx)(nil)
