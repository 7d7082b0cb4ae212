package models

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// maxAttempts bounds how often a transaction that lost a race is re-run.
const maxAttempts = 5

// errRaced asks inTx to roll back and run the transaction again.
var errRaced = errors.New("concurrent write, retry")

// inTx runs fn in a transaction and commits only if fn succeeds. A transaction
// that lost a race to a concurrent one (a deadlock, a serialization failure,
// a row changed or an email taken between our read and our write) is rolled
// back and run again from the start, a bounded number of times. The first
// run reads optimistically, without row locks (the writes check what they
// read); a run after a lost race reads under row locks (lock is true), so
// under contention transactions queue instead of losing again.
func inTx[T any](ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB, lock bool) (T, error)) (T, error) {
	var out T
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		run := func(tx *gorm.DB) error {
			var fnErr error
			out, fnErr = fn(tx, attempt > 1)
			return fnErr
		}
		var pgx bool
		if pgx, err = runPgTx(ctx, db, run); !pgx {
			err = db.WithContext(ctx).Transaction(run)
		}
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return out, err
		}
	}
	return out, err
}

// retryable reports whether err means "another transaction got there first".
func retryable(err error) bool {
	if errors.Is(err, errRaced) || errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}
