package models

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// The statements of the write path (apply.go), built once as text and sent
// in rounds (round.go) on the transaction's connection, without GORM's
// reflection. On Postgres each takes arrays, so its text is the same for any
// batch, and the pool's mode decides how it is sent: prepared once per
// connection when direct, unnamed through a transaction-mode pooler (see
// openPostgresPool). SQLite takes JSON arrays for reads and a VALUES list,
// cached per row count, for the upsert.

// On Postgres the statements run in a transaction that plans with indexes
// and keeps its plans (planSettings, round.go).

// userColumns is the order upsert rows are written in.
const userColumns = `id, email, first_name, last_name, image_url, username, phone_number, tier,
	clerk_updated_at, created_at, updated_at, deleted_at, sync_source, email_verified, raw_json, synced_at`

// readSQL reads the chunk's own rows and the live rows holding its emails
// (a row can come twice; reading it again changes nothing). On Postgres
// the two lookups are a UNION ALL: two index scans, where the same lookups
// joined by OR take a bitmap OR of the two indexes.
var readSQL = map[Dialect]string{
	Postgres: `SELECT id, email, clerk_updated_at, deleted_at IS NOT NULL FROM users WHERE id = ANY($1::text[])
		UNION ALL
		SELECT id, email, clerk_updated_at, false FROM users
		WHERE email = ANY($2::text[]) AND deleted_at IS NULL AND email IS NOT NULL`,
	SQLite: `SELECT id, email, clerk_updated_at, deleted_at IS NOT NULL FROM users
		WHERE id IN (SELECT value FROM json_each(?1))
		OR (email IN (SELECT value FROM json_each(?2)) AND deleted_at IS NULL AND email IS NOT NULL)`,
}

// releaseSQL takes the email away from live rows (rule 3), each only if its
// clerk_updated_at is still the one read. On Postgres usersync_written
// (migration 0003) fails the statement, and so the COMMIT sent after it,
// unless it released every one; SQLite returns the rows it released.
var releaseSQL = map[Dialect]string{
	Postgres: `WITH released AS (
			UPDATE users AS u SET email = NULL, email_verified = false, updated_at = $3
			FROM unnest($1::text[], $2::bigint[]) AS r(id, clerk_updated_at)
			WHERE u.id = r.id AND u.clerk_updated_at = r.clerk_updated_at AND u.deleted_at IS NULL
			RETURNING u.id)
		SELECT usersync_written(count(*), cardinality($1::text[]), 'released') FROM released`,
	// One writer at a time (BEGIN IMMEDIATE): nothing changed since the read.
	SQLite: `UPDATE users SET email = NULL, email_verified = false, updated_at = ?2
		WHERE id IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL
		RETURNING id`,
}

// upsertSet is what a written row overwrites. created_at never changes; a
// tombstone keeps synced_at and the larger clerk_updated_at, unless the
// row's is dated beyond the bound; tier is written only in the form for
// snapshots that name one (rule 4). bound is the placeholder of the
// largest clerk_updated_at that outranks the rows written (rule 11; the
// largest bigint for a webhook).
func upsertSet(withTier bool, greatest, bound string) string {
	set := `email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
		image_url = excluded.image_url, username = excluded.username, phone_number = excluded.phone_number,
		email_verified = excluded.email_verified, raw_json = excluded.raw_json, deleted_at = excluded.deleted_at,
		clerk_updated_at = CASE WHEN excluded.deleted_at IS NULL OR users.clerk_updated_at > ` + bound + `
			THEN excluded.clerk_updated_at ELSE ` + greatest + `(users.clerk_updated_at, excluded.clerk_updated_at) END,
		updated_at = excluded.updated_at, sync_source = excluded.sync_source,
		synced_at = COALESCE(excluded.synced_at, users.synced_at)`
	if withTier {
		set += `, tier = excluded.tier`
	}
	// Rules 1, 5 and 7: only a newer snapshot, or a deletion, changes a
	// live row; nothing changes a tombstone. Rule 11: a row dated beyond
	// the bound takes any other snapshot.
	return set + `
		WHERE users.deleted_at IS NULL
		AND (users.clerk_updated_at < excluded.clerk_updated_at OR excluded.deleted_at IS NOT NULL
			OR (users.clerk_updated_at > ` + bound + ` AND users.clerk_updated_at <> excluded.clerk_updated_at))`
}

// pgUpsertSQL writes rows passed as one array per column; $13 is the row
// time, $14 the source, $15 how many rows it inserts (the others exist),
// $16 the bound of rule 11 (upsertSet). As
// releaseSQL, it fails unless it wrote every row, and inserted those it
// was meant to: a row another transaction inserted after the read is a
// lost race too, so the change that meant to create it is decided again.
var pgUpsertSQL = [2]string{pgUpsert(false), pgUpsert(true)}

func pgUpsert(withTier bool) string {
	return `WITH written AS (INSERT INTO users (` + userColumns + `)
		SELECT r.id, r.email, r.first_name, r.last_name, r.image_url, r.username, r.phone_number, r.tier,
			r.clerk_updated_at, $13, $13, CASE WHEN r.deleted THEN $13::timestamptz END, $14,
			r.email_verified, r.raw_json::jsonb, CASE WHEN NOT r.deleted THEN $13::timestamptz END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::bigint[], $10::bool[], $11::bool[], $12::text[])
			AS r(id, email, first_name, last_name, image_url, username, phone_number,
			tier, clerk_updated_at, deleted, email_verified, raw_json)
		ON CONFLICT (id) DO UPDATE SET ` + upsertSet(withTier, "GREATEST", "$16::bigint") + `
		RETURNING (xmax = 0) AS inserted)
		SELECT usersync_written(count(*), cardinality($1::text[]), 'written'),
			usersync_written(count(*) FILTER (WHERE inserted), $15, 'inserted')
		FROM written`
}

// sqliteUpsertSQL is the SQLite upsert for n rows (the VALUES list grows
// with n), built once per row count. The bound of rule 11 follows the
// rows' parameters, twice (upsertSet names it twice).
func sqliteUpsertSQL(n int, withTier bool) string {
	key := [2]int{n, 0}
	if withTier {
		key[1] = 1
	}
	if s, ok := sqliteUpserts.Load(key); ok {
		return s.(string)
	}
	row := "(" + strings.Repeat("?, ", 15) + "?)"
	s := `INSERT INTO users (` + userColumns + `) VALUES ` + strings.Repeat(row+", ", n-1) + row + `
		ON CONFLICT (id) DO UPDATE SET ` + upsertSet(withTier, "max", "?") + `
		RETURNING id`
	sqliteUpserts.Store(key, s)
	return s
}

var sqliteUpserts sync.Map // [2]int{rows, withTier} → SQL

// lockingReadSQL is readSQL taking row locks, in id order so that two
// transactions lock shared rows in the same order (Postgres; a SQLite
// transaction holds the write lock from its start).
var lockingReadSQL = `SELECT id, email, clerk_updated_at, deleted_at IS NOT NULL FROM users
	WHERE id = ANY($1::text[]) OR (email = ANY($2::text[]) AND deleted_at IS NULL AND email IS NOT NULL)
	ORDER BY id FOR UPDATE`

// readUsers adds to r the read of the state a chunk of changes starts
// from, and returns that state, filled once r is sent.
func readUsers(r *round, dialect Dialect, changes []Change, lock bool) *state {
	ids, emails := readKeys(changes)
	query := readSQL[dialect]
	if lock && dialect == Postgres {
		query = lockingReadSQL
	}
	st := newState(len(changes))
	r.add(statement{
		name: fmt.Sprintf("read %d users", len(ids)), sql: query,
		args: []any{listArg(dialect, ids), listArg(dialect, emails)},
		read: eachRow(func(rs rows) error {
			var id string
			var email *string
			var updatedAt int64
			var deleted bool
			if err := rs.Scan(&id, &email, &updatedAt, &deleted); err != nil {
				return err
			}
			st.add(id, email, updatedAt, deleted)
			return nil
		}),
	})
	return st
}

// readKeys are the ids and emails readSQL looks up for changes.
func readKeys(changes []Change) (ids, emails []string) {
	ids = make([]string, 0, len(changes))
	emails = make([]string, 0, len(changes))
	for _, c := range changes {
		ids = append(ids, c.Snapshot.ID)
		if c.Delete {
			continue // a deletion holds no email
		}
		if e := c.Snapshot.normalized().Email; e != nil {
			emails = append(emails, *e)
		}
	}
	return ids, emails
}

func newState(n int) *state {
	return &state{users: make(map[string]*userState, n), holders: make(map[string]string, n)}
}

// add puts a row as read into the state.
func (st *state) add(id string, email *string, updatedAt int64, deleted bool) {
	u := st.user(id)
	u.exists, u.inDB, u.deleted, u.updatedAt, u.dbUpdatedAt = true, true, deleted, updatedAt, updatedAt
	if !deleted {
		u.dbEmail = email
		st.setEmail(u, email)
	}
}

// listArg passes a list of strings: an array on Postgres, JSON on SQLite.
func listArg(d Dialect, list []string) any {
	if d == Postgres {
		return list
	}
	b, _ := json.Marshal(list) // a []string always encodes
	return string(b)
}

// releaseEmails adds to r the release of the emails users give up; the
// round fails with errRaced if a row changed after the read.
func releaseEmails(r *round, dialect Dialect, users []*userState, at time.Time) {
	if len(users) == 0 {
		return
	}
	ids := make([]string, len(users))
	versions := make([]int64, len(users))
	for i, u := range users {
		ids[i], versions[i] = u.id, u.dbUpdatedAt
	}
	args := []any{ids, versions, at}
	if dialect == SQLite {
		args = []any{listArg(dialect, ids), at}
	}
	r.add(statement{
		name: fmt.Sprintf("release %d emails", len(users)), sql: releaseSQL[dialect], args: args,
		read: checkWritten(dialect, len(ids)),
	})
}

// checkWritten is the read function of a write that must change want rows,
// else the transaction lost a race and runs again. A Postgres write checks
// itself (usersync_written); SQLite, one writer at a time, returns a row per
// row written.
func checkWritten(dialect Dialect, want int) func(rows) error {
	if dialect == Postgres {
		return nil
	}
	return func(rs rows) error {
		n := 0
		for rs.Next() {
			n++
		}
		if n != want {
			return errRaced
		}
		return rs.Err()
	}
}

// upsertUsers adds to r the write of the decided rows; the round fails
// with errRaced unless each was written as decided (a row another
// transaction changed after the read is not, and the transaction then runs
// again to see it).
func upsertUsers(r *round, dialect Dialect, group []*userState, withTier bool, bound int64) {
	if len(group) == 0 {
		return
	}
	sql, args := pgUpsertSQL[0], pgUpsertArgs(group, bound)
	if withTier {
		sql = pgUpsertSQL[1]
	}
	if dialect == SQLite {
		sql, args = sqliteUpsertSQL(len(group), withTier), sqliteUpsertArgs(group, bound)
	}
	r.add(statement{
		name: fmt.Sprintf("upsert %d users", len(group)), sql: sql, args: args,
		read: checkWritten(dialect, len(group)),
	})
}

func pgUpsertArgs(group []*userState, bound int64) []any {
	n := len(group)
	ids, tiers := make([]string, n), make([]string, n)
	var text [6][]*string // email, first_name, last_name, image_url, username, phone_number
	for i := range text {
		text[i] = make([]*string, n)
	}
	raw := make([]*string, n)
	versions := make([]int64, n)
	deleted, verified := make([]bool, n), make([]bool, n)
	inserts := 0
	for i, u := range group {
		if !u.inDB {
			inserts++
		}
		r := u.row
		ids[i], tiers[i], versions[i] = r.ID, r.Tier, r.ClerkUpdatedAt
		text[0][i], text[1][i], text[2][i] = r.Email, r.FirstName, r.LastName
		text[3][i], text[4][i], text[5][i] = r.ImageURL, r.Username, r.PhoneNumber
		deleted[i], verified[i], raw[i] = r.DeletedAt != nil, r.EmailVerified, r.RawJSON
	}
	return []any{ids, text[0], text[1], text[2], text[3], text[4], text[5], tiers, versions, deleted, verified,
		raw, group[0].row.UpdatedAt, string(group[0].row.SyncSource), inserts, bound}
}

func sqliteUpsertArgs(group []*userState, bound int64) []any {
	args := make([]any, 0, 16*len(group)+2)
	for _, u := range group {
		r := u.row
		args = append(args, r.ID, r.Email, r.FirstName, r.LastName, r.ImageURL, r.Username, r.PhoneNumber, r.Tier,
			r.ClerkUpdatedAt, r.CreatedAt, r.UpdatedAt, r.DeletedAt, string(r.SyncSource), r.EmailVerified, r.RawJSON,
			r.SyncedAt)
	}
	return append(args, bound, bound)
}

// translate maps a driver error to GORM's (gorm.ErrDuplicatedKey, ...), as
// GORM does for statements it runs itself, so inTx sees a lost race.
func translate(tx *gorm.DB, err error) error {
	if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}
