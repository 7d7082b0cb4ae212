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

// A session is the engine's transaction. Its statements go in runs: on
// Postgres a run is one round trip (a pgx batch on the transaction's
// connection, the first one also beginning it, the last one also
// committing it), so a batch costs two: begin, (record,) lock and read;
// write and commit. SQLite runs them one after another.
type session interface {
	dialect() Dialect
	run(ctx context.Context, steps ...*step) error
	// finish runs the transaction's last steps and commits, in one round
	// trip on Postgres; a dry run's session runs them and commits nothing.
	finish(ctx context.Context, steps ...*step) error
}

// step is one statement of a run.
type step struct {
	what string // for errors: "read 12 users"
	sql  string
	args []any
	// row reads each row of a query; nil for a statement whose rows are
	// not read, whose count of rows changed is then in affected.
	row      func(scan func(...any) error) error
	affected int64
	want     int64 // for a write: the rows it must change
}

// inTx runs fn in a session, which fn's last run (finish) commits; a dry
// run's is rolled back. Locks are taken in one fixed order, but a batch
// gives up the email of a row it did not lock (rule 3), so two batches
// swapping two users' emails can still wait on each other's rows; Postgres
// aborts one, and it runs again.
func inTx[T any](ctx context.Context, db *gorm.DB, dryRun bool, fn func(s session) (T, error)) (T, error) {
	var out T
	var err error
	for range maxAttempts {
		out, err = runSession(ctx, db, dryRun, fn)
		if !retryable(err) || ctx.Err() != nil {
			return out, err
		}
	}
	return out, err
}

// maxAttempts bounds how often a transaction Postgres aborted to break a
// deadlock is run again.
const maxAttempts = 5

// retryable reports whether Postgres aborted the transaction to break a
// deadlock (or a serialization failure, which only stricter isolation than
// the default raises).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func runSession[T any](ctx context.Context, db *gorm.DB, dryRun bool, fn func(s session) (T, error)) (T, error) {
	var out T
	if DialectOf(db) != Postgres {
		err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			out, err = fn(sqliteSession{tx})
			if err == nil && dryRun {
				err = errDryRun // rolls back
			}
			return err
		})
		if errors.Is(err, errDryRun) {
			err = nil
		}
		return out, err
	}
	pool, err := db.DB()
	if err != nil {
		return out, err
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return out, err
	}
	// A connection left inside a transaction is discarded by the pool
	// (pgx's ResetSession), never reused.
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		s := &pgSession{conn: dc.(*stdlib.Conn).Conn(), dryRun: dryRun}
		var err error
		out, err = fn(s)
		if err == nil && s.begun && !dryRun {
			err = errors.New("the transaction was left open: its last run did not commit")
		}
		if s.begun {
			s.rollback(ctx) // after a failure, or a dry run
		}
		return err
	})
	return out, err
}

// errDryRun rolls back a SQLite dry run.
var errDryRun = errors.New("dry run")

// pgSession is a transaction on one pgx connection of the pool, begun by
// its first run.
type pgSession struct {
	conn   *pgx.Conn
	begun  bool // BEGIN sent, and neither COMMIT nor ROLLBACK since
	dryRun bool
}

func (s *pgSession) dialect() Dialect { return Postgres }

func (s *pgSession) run(ctx context.Context, steps ...*step) error {
	return s.send(ctx, steps, false)
}

func (s *pgSession) finish(ctx context.Context, steps ...*step) error {
	return s.send(ctx, steps, !s.dryRun)
}

// send runs steps as one pgx batch: BEGIN first if the transaction has not
// begun, COMMIT last when commit is set.
func (s *pgSession) send(ctx context.Context, steps []*step, commit bool) error {
	if len(steps) == 0 && (!commit || !s.begun) {
		return nil
	}
	b := &pgx.Batch{}
	if !s.begun {
		b.Queue("begin")
	}
	for _, st := range steps {
		b.Queue(st.sql, st.args...)
	}
	if commit {
		b.Queue("commit")
	}
	res := s.conn.SendBatch(ctx, b)
	err := s.read(res, steps, commit)
	if closeErr := res.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("batch: %w", closeErr)
	}
	return err
}

func (s *pgSession) read(res pgx.BatchResults, steps []*step, commit bool) error {
	if !s.begun {
		if _, err := res.Exec(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		s.begun = true
	}
	for _, st := range steps {
		if st.row == nil {
			tag, err := res.Exec()
			if err != nil {
				return fmt.Errorf("%s: %w", st.what, err)
			}
			st.affected = tag.RowsAffected()
			continue
		}
		rows, err := res.Query()
		if err == nil {
			err = eachRow(rows, st.row)
		}
		rows.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	if commit {
		// Postgres answers ROLLBACK, without an error, when a statement
		// of the transaction had failed.
		tag, err := res.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("answered %s", tag)
		}
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		s.begun = false
	}
	return nil
}

// rollback ends a failed transaction; a connection it cannot roll back is
// left inside the transaction, and the pool discards it.
func (s *pgSession) rollback(ctx context.Context) {
	if s.begun {
		_, _ = s.conn.Exec(context.WithoutCancel(ctx), "rollback")
	}
}

// sqliteSession runs steps one after another in GORM's transaction.
type sqliteSession struct{ tx *gorm.DB }

func (s sqliteSession) dialect() Dialect { return SQLite }

// finish runs the steps; GORM's transaction commits when fn returns.
func (s sqliteSession) finish(ctx context.Context, steps ...*step) error { return s.run(ctx, steps...) }

func (s sqliteSession) run(ctx context.Context, steps ...*step) error {
	pool := s.tx.Statement.ConnPool
	for _, st := range steps {
		var err error
		if st.row == nil {
			var res sql.Result
			if res, err = pool.ExecContext(ctx, st.sql, st.args...); err == nil {
				st.affected, err = res.RowsAffected()
			}
		} else {
			var rows *sql.Rows
			if rows, err = pool.QueryContext(ctx, st.sql, st.args...); err == nil {
				err = eachRow(rows, st.row)
				rows.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// rows are a query's results: *sql.Rows and pgx.Rows both are.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func eachRow(rs rows, fn func(scan func(...any) error) error) error {
	for rs.Next() {
		if err := fn(rs.Scan); err != nil {
			return err
		}
	}
	return rs.Err()
}
