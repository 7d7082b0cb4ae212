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
// transaction's BEGIN when it is the first round, and its COMMIT when the
// round is sent at commit (sendAtCommit). A webhook batch then costs two
// round trips: BEGIN, record the events and read their users; write the
// users and COMMIT. Elsewhere (SQLite) the statements run one after another.
type round []statement

// statement is one statement of a round and what reads its rows.
type statement struct {
	name string // what it does, for errors: "read 12 users"
	sql  string
	args []any
	read func(rows) error // nil: the rows are not needed
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
		return t.send(tx.Statement.Context, r, false)
	}
	for _, s := range r {
		if err := runStatement(tx, s); err != nil {
			return fmt.Errorf("%s: %w", s.name, translate(tx, err))
		}
	}
	return nil
}

// sendAtCommit is send for writes whose answers nothing else in the
// transaction waits on. On Postgres they wait and go in the round trip of
// the transaction's COMMIT, or of its next statement if one comes first;
// their read functions run then. So a write that must stop the commit has
// to fail in SQL, not only in its read function (usersync_written, in
// sql.go). Elsewhere the round is sent now.
func (r round) sendAtCommit(tx *gorm.DB) error {
	if t, ok := tx.Statement.ConnPool.(*pgTx); ok {
		t.atCommit = append(t.atCommit, r...)
		return nil
	}
	return r.send(tx)
}

func runStatement(tx *gorm.DB, s statement) error {
	rs, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, s.sql, s.args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	return readAll(rs, s.read)
}

// eachRow is a read function that calls scan for every row.
func eachRow(scan func(rs rows) error) func(rows) error {
	return func(rs rows) error {
		for rs.Next() {
			if err := scan(rs); err != nil {
				return err
			}
		}
		return nil
	}
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

// planSettings follow every BEGIN of a pgTx, for that transaction only. Its
// statements find rows by id or email, and on a direct connection pgx
// prepares them once per connection, so Postgres can plan each once and
// keep the plan: planning the batch's read with its values took more of the
// server's time than running it. A plan made once must not depend on the
// table's size at that moment: made while the table was small (a fresh
// install, the start of a backfill) it would be a sequential scan, kept
// until the next ANALYZE while the table grows. With sequential scans off it
// is an index scan whatever the size, and it is made generic at the first
// execution rather than after five plans with values. Through a pooler the
// statements are unnamed and planned each time, with the same result.
const planSettings = `SELECT set_config('enable_seqscan', 'off', true),
	set_config('plan_cache_mode', 'force_generic_plan', true)`

// pgTx is a Postgres transaction on one connection of GORM's pool, begun by
// its first round rather than by a round trip of its own. It is a
// gorm.ConnPool, so statements GORM builds (the organization tables) run
// in it too; the first of those, if it comes before any round, sends BEGIN
// on its own.
type pgTx struct {
	db       *gorm.DB // for translating errors
	conn     *sql.Conn
	begun    bool  // BEGIN has been sent, COMMIT not yet
	atCommit round // statements waiting to go with the COMMIT (sendAtCommit)
	// implicit is a transaction of one round with neither BEGIN nor COMMIT:
	// Postgres runs a batch's statements in one implicit transaction, which
	// planSettings last for (readRound).
	implicit bool
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
	t := &pgTx{db: db, conn: conn}
	tx := db.Session(&gorm.Session{NewDB: true, Context: ctx})
	tx.Statement.ConnPool = t
	if err := fn(tx); err != nil {
		t.rollback(ctx)
		return true, err
	}
	if err := t.commit(ctx); err != nil {
		t.rollback(ctx)
		return true, err
	}
	return true, nil
}

// commit commits, with the statements waiting for it in the same round
// trip, and fails if Postgres rolled back instead (a statement of the
// transaction had failed).
func (t *pgTx) commit(ctx context.Context) error {
	if len(t.atCommit) > 0 {
		return t.send(ctx, nil, true)
	}
	if !t.begun {
		return nil // nothing ran
	}
	err := t.conn.Raw(func(dc any) error {
		return committed(dc.(*stdlib.Conn).Conn().Exec(ctx, "commit"))
	})
	if err != nil {
		return fmt.Errorf("commit: %w", translate(t.db, err))
	}
	t.begun = false
	return nil
}

var errNotPgx = errors.New("not a pgx connection")

// send runs the statements waiting for the commit and then r as one pgx
// batch, BEGIN first if the transaction has not begun and COMMIT last when
// commit is set. The batch's statements are prepared once per connection
// (or sent unnamed through a pooler), as the pool's mode says.
func (t *pgTx) send(ctx context.Context, r round, commit bool) error {
	all := r
	if len(t.atCommit) > 0 {
		all = append(t.atCommit, r...)
		t.atCommit = nil
	}
	var failed string
	err := t.conn.Raw(func(dc any) error {
		conn := dc.(*stdlib.Conn).Conn()
		b := &pgx.Batch{}
		if !t.begun && !t.implicit {
			b.Queue("begin")
		}
		if !t.begun {
			b.Queue(planSettings)
		}
		for _, s := range all {
			b.Queue(s.sql, s.args...)
		}
		if commit && !t.implicit {
			b.Queue("commit")
		}
		res := conn.SendBatch(ctx, b)
		var err error
		failed, err = t.readBatch(res, all, commit)
		if closeErr := res.Close(); err == nil {
			err = closeErr
		}
		return err
	})
	if err != nil {
		if failed == "" {
			failed = "round" // the statements answered, the batch failed after them
		}
		return fmt.Errorf("%s: %w", failed, translate(t.db, err))
	}
	return nil
}

// readBatch reads a batch's results in order and names the statement that
// failed.
func (t *pgTx) readBatch(res pgx.BatchResults, r round, commit bool) (string, error) {
	if !t.begun {
		head := 2 // BEGIN, planSettings
		if t.implicit {
			head = 1
		}
		for range head {
			if _, err := res.Exec(); err != nil {
				return "begin", err
			}
		}
		t.begun = !t.implicit
	}
	for _, s := range r {
		rs, err := res.Query()
		if err == nil {
			err = readAll(rs, s.read)
		}
		rs.Close()
		if err != nil {
			return s.name, err
		}
	}
	if commit && !t.implicit {
		if err := committed(res.Exec()); err != nil {
			return "commit", err
		}
		t.begun = false
	}
	return "", nil
}

// committed checks a COMMIT's answer: Postgres answers ROLLBACK, without an
// error, when a statement of the transaction had failed.
func committed(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("answered %s", tag)
	}
	return err
}

// readRound runs a round of reads outside the caller's transactions: on
// Postgres in one round trip, after planSettings, in the implicit
// transaction of one pgx batch; elsewhere one after another.
func readRound(ctx context.Context, db *gorm.DB, r round) error {
	ok, err := runPgTx(ctx, db, func(tx *gorm.DB) error {
		tx.Statement.ConnPool.(*pgTx).implicit = true
		return r.sendAtCommit(tx)
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

// begin readies the transaction for a statement that is not in a round:
// it sends BEGIN, and the statements waiting for the commit, which come
// before it.
func (t *pgTx) begin(ctx context.Context) error {
	if len(t.atCommit) > 0 {
		return t.send(ctx, nil, false)
	}
	if t.begun {
		return nil
	}
	// Without arguments pgx sends this in the simple protocol, which takes
	// the two statements in one round trip.
	if _, err := t.conn.ExecContext(ctx, "begin; "+planSettings); err != nil {
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
