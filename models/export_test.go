package models

import (
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

// SendRound sends the queries as one round in tx and returns each one's
// rows, every column read as text. A query marked in lookup is planned
// with its values, as the write path's reads are.
func SendRound(tx *gorm.DB, lookup map[int]bool, queries ...string) ([][]string, error) {
	r, out := textRound(lookup, queries)
	return out, r.send(tx)
}

// SendRoundAtCommit queues the queries to go with tx's COMMIT; their rows
// are in *out once it has committed.
func SendRoundAtCommit(tx *gorm.DB, queries ...string) (out *[][]string, err error) {
	r, rows := textRound(nil, queries)
	return &rows, r.sendAtCommit(tx)
}

func textRound(lookup map[int]bool, queries []string) (round, [][]string) {
	out := make([][]string, len(queries))
	var r round
	for i, q := range queries {
		r.add(statement{name: fmt.Sprintf("query %d", i), sql: q, lookup: lookup[i], read: func(rs rows) error {
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
