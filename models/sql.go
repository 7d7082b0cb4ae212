package models

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The engine's statements (engine.go). On Postgres each takes one array per
// list or column, so its text is the same for any batch; SQLite takes JSON
// arrays for lists and a VALUES list, built once per row count, for writes.

// lockKeysSQL takes the batch lock shared, then the key locks, in the
// order given; lockBatchSQL takes the batch lock alone, exclusive. Both are
// released when the transaction ends, so they hold through a pooler in
// transaction mode.
const (
	lockKeysSQL = `SELECT CASE WHEN n = 1 THEN pg_advisory_xact_lock_shared(k) ELSE pg_advisory_xact_lock(k) END
		FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, n) ORDER BY n`
	lockBatchSQL = `SELECT pg_advisory_xact_lock(($1::bigint[])[1])`
)

// planReadsWithValues has Postgres plan the reads of a batch with their
// values at every run, though pgx prepares them once per connection (and a
// plan cached then would be kept): the plan of a lookup made while the table
// was small, on a fresh install, scans the table whole once it has grown.
// planAsConfigured restores the setting for the rest of the transaction.
const (
	planReadsWithValues = `SET LOCAL plan_cache_mode = force_custom_plan`
	planAsConfigured    = `SET LOCAL plan_cache_mode = DEFAULT`
)

// readUsersSQL reads the batch's users and the live rows holding its
// emails (a row can come twice). On Postgres the two lookups are a UNION
// ALL: two index scans.
var readUsersSQL = map[Dialect]string{
	Postgres: `SELECT id, email, tier, clerk_updated_at, deleted_at IS NOT NULL FROM users WHERE id = ANY($1::text[])
		UNION ALL
		SELECT id, email, tier, clerk_updated_at, false FROM users
		WHERE email = ANY($2::text[]) AND deleted_at IS NULL AND email IS NOT NULL`,
	SQLite: `SELECT id, email, tier, clerk_updated_at, deleted_at IS NOT NULL FROM users
		WHERE id IN (SELECT value FROM json_each(?1))
		OR (email IN (SELECT value FROM json_each(?2)) AND deleted_at IS NULL AND email IS NOT NULL)`,
}

// readOrgsSQL reads the batch's organizations, without raw_json, which a
// write either replaces or clears.
var readOrgsSQL = map[Dialect]string{
	Postgres: `SELECT id, name, slug, image_url, created_by, tier, members_count, clerk_updated_at, deleted_at IS NOT NULL
		FROM organizations WHERE id = ANY($1::text[])`,
	SQLite: `SELECT id, name, slug, image_url, created_by, tier, members_count, clerk_updated_at, deleted_at IS NOT NULL
		FROM organizations WHERE id IN (SELECT value FROM json_each(?1))`,
}

// readMembershipsSQL reads memberships by id, every membership of some
// users (rule 10, a user's deletion, pruning), and every membership of some
// organizations (an organization's deletion).
var readMembershipsSQL = map[Dialect]string{
	Postgres: `SELECT ` + memReadColumns + ` FROM organization_memberships WHERE id = ANY($1::text[])
		UNION ALL SELECT ` + memReadColumns + ` FROM organization_memberships WHERE user_id = ANY($2::text[])
		UNION ALL SELECT ` + memReadColumns + ` FROM organization_memberships WHERE organization_id = ANY($3::text[])`,
	SQLite: `SELECT ` + memReadColumns + ` FROM organization_memberships
		WHERE id IN (SELECT value FROM json_each(?1)) OR user_id IN (SELECT value FROM json_each(?2))
		OR organization_id IN (SELECT value FROM json_each(?3))`,
}

const memReadColumns = `id, organization_id, user_id, role, clerk_created_at, clerk_updated_at, deleted_at IS NOT NULL`

// releaseEmailsSQL takes the email away from live rows (rule 3) before
// another row is given it. On Postgres a row gives up only the address it
// was read with: one that has moved to another address since is left be.
var releaseEmailsSQL = map[Dialect]string{
	Postgres: `UPDATE users AS u SET email = NULL, email_verified = false, updated_at = $3
		FROM unnest($1::text[], $2::text[]) AS r(id, email)
		WHERE u.id = r.id AND u.email = r.email AND u.deleted_at IS NULL`,
	SQLite: `UPDATE users SET email = NULL, email_verified = false, updated_at = ?2
		WHERE id IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL`,
}

// guard is the ON CONFLICT … WHERE of every upsert: only a newer snapshot,
// or a deletion, changes a live row (rules 1 and 7); nothing changes a
// tombstone (rule 5); a row dated beyond the bound takes any other
// snapshot (rule 11). {bound} is the bound's placeholder.
func guard(t string) string {
	return ` WHERE ` + t + `.deleted_at IS NULL AND (` + t + `.clerk_updated_at < excluded.clerk_updated_at
		OR excluded.deleted_at IS NOT NULL
		OR (` + t + `.clerk_updated_at > {bound} AND ` + t + `.clerk_updated_at <> excluded.clerk_updated_at))`
}

// table is how the engine writes rows of type R.
type table[R any] struct {
	name    string
	columns []column
	values  func(r *R) []any // in columns' order
	set     string           // DO UPDATE SET …, with guard

	pg     string // the Postgres statement, built once
	pgOnce sync.Once
	sqlite sync.Map // row count → the SQLite statement
}

// column is a written column and its Postgres type. Four kinds of column
// hold the same value in every row of a batch, so Postgres takes them as
// one parameter: "rowtime" (the batch's time), "deletedtime" (the batch's
// time in a tombstone), "syncedtime" (the batch's time in a live row) and
// "source".
type column struct{ name, pgType string }

// perBatch reports whether the column's value is the same in every row.
func (c column) perBatch() bool {
	switch c.pgType {
	case "rowtime", "deletedtime", "syncedtime", "source":
		return true
	}
	return false
}

func cols(spec string) []column {
	var out []column
	for _, f := range strings.Split(spec, ",") {
		name, typ, _ := strings.Cut(strings.TrimSpace(f), " ")
		out = append(out, column{name, typ})
	}
	return out
}

// updateAll is the SET list that overwrites every column but id and
// created_at, and the guard.
func updateAll(t string, columns []column, except ...string) string {
	var set []string
	for _, c := range columns {
		if c.name == "id" || c.name == "created_at" || slices.Contains(except, c.name) {
			continue
		}
		set = append(set, c.name+" = excluded."+c.name)
	}
	return strings.Join(set, ", ")
}

var usersTable = newTable("users",
	cols(`id text, email text, first_name text, last_name text, image_url text, username text,
		phone_number text, tier text, clerk_updated_at bigint, created_at rowtime, updated_at rowtime,
		deleted_at deletedtime, sync_source source, email_verified boolean, raw_json jsonb, synced_at syncedtime`),
	func(u *User) []any {
		return []any{u.ID, u.Email, u.FirstName, u.LastName, u.ImageURL, u.Username, u.PhoneNumber, u.Tier,
			u.ClerkUpdatedAt, u.CreatedAt, u.UpdatedAt, u.DeletedAt, string(u.SyncSource), u.EmailVerified,
			u.RawJSON, u.SyncedAt}
	},
	// A tombstone keeps the time the row was last confirmed (synced_at).
	", synced_at = COALESCE(excluded.synced_at, users.synced_at)", "synced_at")

var orgsTable = newTable("organizations",
	cols(`id text, name text, slug text, image_url text, created_by text, tier text, members_count bigint,
		clerk_updated_at bigint, created_at rowtime, updated_at rowtime, deleted_at deletedtime,
		sync_source source, raw_json jsonb`),
	func(o *Organization) []any {
		return []any{o.ID, o.Name, o.Slug, o.ImageURL, o.CreatedBy, o.Tier, o.MembersCount, o.ClerkUpdatedAt,
			o.CreatedAt, o.UpdatedAt, o.DeletedAt, string(o.SyncSource), o.RawJSON}
	}, "")

var membershipsTable = newTable("organization_memberships",
	cols(`id text, organization_id text, user_id text, role text, clerk_created_at bigint,
		clerk_updated_at bigint, created_at rowtime, updated_at rowtime, deleted_at deletedtime,
		sync_source source, raw_json jsonb`),
	func(m *Membership) []any {
		return []any{m.ID, m.OrganizationID, m.UserID, m.Role, m.ClerkCreatedAt, m.ClerkUpdatedAt, m.CreatedAt,
			m.UpdatedAt, m.DeletedAt, string(m.SyncSource), m.RawJSON}
	}, "")

// newTable builds a table's SET list: every column but id and created_at,
// except those extra sets itself.
func newTable[R any](name string, columns []column, values func(*R) []any, extra string, except ...string) *table[R] {
	return &table[R]{name: name, columns: columns, values: values,
		set: updateAll(name, columns, except...) + extra + guard(name)}
}

func (t *table[R]) columnList() string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// statement is the upsert of rows and its arguments.
func (t *table[R]) statement(d Dialect, rows []*R, bound int64) (string, []any) {
	if d == Postgres {
		return t.pgStatement(), t.pgArgs(rows, bound)
	}
	n := len(rows)
	query, ok := t.sqlite.Load(n)
	if !ok {
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.columns)), ", ") + ")"
		bound := "?" + strconv.Itoa(n*len(t.columns)+1)
		query = `INSERT INTO ` + t.name + ` (` + t.columnList() + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", ") +
			` ON CONFLICT (id) DO UPDATE SET ` + strings.ReplaceAll(t.set, "{bound}", bound)
		t.sqlite.Store(n, query)
	}
	args := make([]any, 0, n*len(t.columns)+1)
	for _, r := range rows {
		args = append(args, t.values(r)...)
	}
	return query.(string), append(args, bound)
}

// pgStatement inserts the rows given as one array per column, and the
// per-batch columns from three parameters after the bound: the batch's
// time and source.
func (t *table[R]) pgStatement() string {
	t.pgOnce.Do(func() {
		var arrays, names, selects []string
		n := len(t.arrayColumns()) + 1 // and "deleted"
		bound, at, src := fmt.Sprintf("$%d::bigint", n+1), fmt.Sprintf("$%d::timestamptz", n+2), fmt.Sprintf("$%d", n+3)
		for _, c := range t.columns {
			switch c.pgType {
			case "rowtime":
				selects = append(selects, at)
			case "deletedtime":
				selects = append(selects, "CASE WHEN r.deleted THEN "+at+" END")
			case "syncedtime":
				selects = append(selects, "CASE WHEN NOT r.deleted THEN "+at+" END")
			case "source":
				selects = append(selects, src)
			case "jsonb":
				selects = append(selects, "r."+c.name+"::jsonb")
			default:
				selects = append(selects, "r."+c.name)
			}
		}
		for i, c := range t.arrayColumns() {
			typ := c.pgType
			if typ == "jsonb" {
				typ = "text"
			}
			arrays, names = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, typ)), append(names, c.name)
		}
		arrays, names = append(arrays, fmt.Sprintf("$%d::boolean[]", n)), append(names, "deleted")
		// The insert runs in a CTE and the statement answers how many rows
		// it wrote: measured a fifth faster for a 500-row page than the
		// bare INSERT … SELECT, whose count pgx reads from the command tag.
		t.pg = `WITH written AS (INSERT INTO ` + t.name + ` (` + t.columnList() + `)
			SELECT ` + strings.Join(selects, ", ") + `
			FROM unnest(` + strings.Join(arrays, ", ") + `) AS r(` + strings.Join(names, ", ") + `)
			ON CONFLICT (id) DO UPDATE SET ` + strings.ReplaceAll(t.set, "{bound}", bound) + `
			RETURNING 1)
			SELECT count(*) FROM written`
	})
	return t.pg
}

func (t *table[R]) arrayColumns() []column {
	var out []column
	for _, c := range t.columns {
		if !c.perBatch() {
			out = append(out, c)
		}
	}
	return out
}

// pgArgs are the statement's arguments: one typed array per column that
// varies by row, as pgx sends them, whether each row is a tombstone, then
// the bound, the batch's time and its source.
func (t *table[R]) pgArgs(rows []*R, bound int64) []any {
	var args []any
	deleted := make([]bool, len(rows))
	var at time.Time
	var src string
	values := make([][]any, len(rows))
	for i, r := range rows {
		values[i] = t.values(r)
	}
	for j, c := range t.columns {
		switch c.pgType {
		// Typed slices: pgx encodes []string and []int64 without
		// reflection, which a 500-row page of []*string would cost.
		case "text", "jsonb":
			if _, ok := values[0][j].(string); ok {
				a := make([]string, len(rows))
				for i := range rows {
					a[i] = values[i][j].(string)
				}
				args = append(args, a)
				break
			}
			a := make([]*string, len(rows))
			for i := range rows {
				a[i] = values[i][j].(*string)
			}
			args = append(args, a)
		case "bigint":
			if _, ok := values[0][j].(int64); ok {
				a := make([]int64, len(rows))
				for i := range rows {
					a[i] = values[i][j].(int64)
				}
				args = append(args, a)
				break
			}
			a := make([]*int64, len(rows))
			for i := range rows {
				a[i] = values[i][j].(*int64)
			}
			args = append(args, a)
		case "boolean":
			a := make([]bool, len(rows))
			for i := range rows {
				a[i] = values[i][j].(bool)
			}
			args = append(args, a)
		case "rowtime":
			at = values[0][j].(time.Time)
		case "deletedtime":
			for i := range rows {
				deleted[i] = values[i][j].(*time.Time) != nil
			}
		case "source":
			src = values[0][j].(string)
		}
	}
	return append(args, deleted, bound, at, src)
}

// listArg passes a list of strings: an array on Postgres, JSON on SQLite.
func listArg(d Dialect, list []string) any {
	if d == Postgres {
		return list
	}
	b, _ := json.Marshal(list) // a []string always encodes
	return string(b)
}
