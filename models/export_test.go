package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Internals the external tests drive directly.
var (
	ApplyOrgChangesInTx = applyOrgChanges
	Now                 = now
)

// RunPgTx runs fn in a transaction whose rounds are pgx batches; false when
// db's connections are not pgx's (SQLite), and then nothing ran.
var RunPgTx = runPgTx

// ReadUsersSQL is the write path's read on Postgres.
var ReadUsersSQL = readSQL[Postgres]

// SendRound sends the queries as one round in tx and returns each one's
// rows, every column read as text.
func SendRound(tx *gorm.DB, queries ...string) ([][]string, error) {
	r, out := textRound(queries)
	return out, r.send(tx)
}

// SendRoundAtCommit queues the queries to go with tx's COMMIT; their rows
// are in *out once it has committed.
func SendRoundAtCommit(tx *gorm.DB, queries ...string) (out *[][]string, err error) {
	r, rows := textRound(queries)
	return &rows, r.sendAtCommit(tx)
}

// ReadRound runs the queries as readRound does (the profile reads) and
// returns each one's rows.
func ReadRound(ctx context.Context, db *gorm.DB, queries ...string) ([][]string, error) {
	r, out := textRound(queries)
	return out, readRound(ctx, db, r)
}

func textRound(queries []string) (round, [][]string) {
	out := make([][]string, len(queries))
	var r round
	for i, q := range queries {
		r.add(statement{name: fmt.Sprintf("query %d", i), sql: q, read: func(rs rows) error {
			for rs.Next() {
				var v *string
				if err := rs.Scan(&v); err != nil {
					return err
				}
				s := "NULL"
				if v != nil {
					s = *v
				}
				out[i] = append(out[i], s)
			}
			return nil
		}})
	}
	return r, out
}
