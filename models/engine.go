package models

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// The engine is the one write path of the users, organizations and
// organization_memberships tables. Every path (webhook batches, login-time
// sync, backfill, prune, reconcile) hands it a batch of changes, and it
// applies them in one transaction, as if one after another, in four steps:
//
//  1. lock: on Postgres, transaction-scoped advisory locks on the keys the
//     batch touches (user ids, emails, organization ids, membership ids),
//     in one statement, in a fixed order; SQLite runs one writer at a time
//     (BEGIN IMMEDIATE). Every writer of a row holds its key, every writer
//     that makes a membership live holds its organization's and its user's,
//     and every writer that gives a user an email holds the email's, so
//     what a batch reads stays true until it commits.
//  2. read the rows the changes name, and those the rules reach: the live
//     holders of the emails, the memberships of the users and organizations.
//  3. decide every change in Go (rules.go).
//  4. write the rows that changed with set-based upserts (sql.go).

// ChangeKind says what a Change asks of the tables.
type ChangeKind int

// What Clerk can say about a user, an organization or a membership.
const (
	ApplyUser        ChangeKind = iota + 1 // user.created/updated, a fetched user
	DeleteUser                             // user.deleted; reads User.ID only
	ApplyOrg                               // organization.created/updated
	DeleteOrg                              // organization.deleted; reads Org.ID only
	ApplyMembership                        // organizationMembership.created/updated
	DeleteMembership                       // organizationMembership.deleted; uses what it has
	// PruneMemberships tombstones the live memberships of UserID that are
	// not in Keep and were created before Before (ms): what a complete
	// listing of the user's memberships says is gone.
	PruneMemberships
)

// Change is one thing to do to the tables.
type Change struct {
	Kind       ChangeKind
	User       Snapshot
	Org        OrgSnapshot
	Membership MembershipSnapshot
	UserID     string          // PruneMemberships
	Keep       map[string]bool // PruneMemberships
	Before     int64           // PruneMemberships
}

// UserChange is the change a user snapshot asks for.
func UserChange(s Snapshot) Change { return Change{Kind: ApplyUser, User: s} }

// UserDeletion is the change user.deleted asks for.
func UserDeletion(id string) Change { return Change{Kind: DeleteUser, User: Snapshot{ID: id}} }

// MembershipChanges is what a membership event says: its organization
// snapshot (rule 8), then the membership itself (kind is ApplyMembership
// or DeleteMembership).
func MembershipChanges(kind ChangeKind, m MembershipSnapshot) []Change {
	var out []Change
	if m.Org != nil {
		out = append(out, Change{Kind: ApplyOrg, Org: *m.Org})
	}
	return append(out, Change{Kind: kind, Membership: m})
}

// Apply applies changes in order in one transaction and returns each one's
// outcome. A 2xx answer may be given once it returns nil: the transaction
// has committed (rule 6).
func Apply(ctx context.Context, db *gorm.DB, changes []Change, src Source) ([]Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB) ([]Outcome, error) {
		return apply(tx, changes, src, now())
	})
}

// DryRun reports what Apply would do and writes nothing: it runs the same
// transaction and rolls it back.
func DryRun(ctx context.Context, db *gorm.DB, changes []Change, src Source) ([]Outcome, error) {
	var out []Outcome
	_, err := inTx(ctx, db, func(tx *gorm.DB) (struct{}, error) {
		var err error
		if out, err = apply(tx, changes, src, now()); err == nil {
			err = errDryRun
		}
		return struct{}{}, err
	})
	if errors.Is(err, errDryRun) {
		return out, nil
	}
	return nil, err
}

var errDryRun = errors.New("dry run")

// ApplySnapshot applies one user snapshot.
func ApplySnapshot(ctx context.Context, db *gorm.DB, s Snapshot, src Source) (Outcome, error) {
	out, err := Apply(ctx, db, []Change{UserChange(s)}, src)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// Tombstone records that Clerk deleted the user (rule 5).
func Tombstone(ctx context.Context, db *gorm.DB, id string, src Source) (Outcome, error) {
	out, err := Apply(ctx, db, []Change{UserDeletion(id)}, src)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// maxAttempts bounds how often a transaction Postgres aborted to break a
// deadlock is run again.
const maxAttempts = 5

// inTx runs fn in a transaction and commits only if fn succeeds. Locks are
// taken in one fixed order, but a batch gives up the email of a row it did
// not lock (rule 3), so two batches swapping two users' emails can still
// wait on each other's rows; Postgres aborts one, and it runs again.
func inTx[T any](ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) (T, error)) (T, error) {
	var out T
	var err error
	for range maxAttempts {
		err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var fnErr error
			out, fnErr = fn(tx)
			return fnErr
		})
		if !retryable(err) || ctx.Err() != nil {
			return out, err
		}
	}
	return out, err
}

// retryable reports whether Postgres aborted the transaction to break a
// deadlock (or a serialization failure, which only stricter isolation than
// the default raises).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// now is the row time: UTC, cut to the microseconds Postgres keeps, so a value
// read back equals the value written on both databases.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// apply runs the four steps in the caller's transaction.
func apply(tx *gorm.DB, changes []Change, src Source, at time.Time) ([]Outcome, error) {
	k := keysOf(changes)
	q := queryer{tx: tx, dialect: DialectOf(tx)}
	if err := q.lock(k); err != nil {
		return nil, err
	}
	st := newState(src, at)
	if err := q.read(st, k); err != nil {
		return nil, err
	}
	out := st.decide(changes)
	return out, q.write(st)
}

// keys are what a batch locks and reads.
type keys struct {
	users, emails, orgs, mems []string
	memsOfUsers, memsOfOrgs   []string // whose memberships the rules reach
}

func keysOf(changes []Change) keys {
	var k keys
	for _, c := range changes {
		switch c.Kind {
		case ApplyUser:
			k.users = append(k.users, c.User.ID)
			if e := c.User.normalized().Email; e != nil {
				k.emails = append(k.emails, *e)
			}
		case DeleteUser:
			k.users, k.memsOfUsers = append(k.users, c.User.ID), append(k.memsOfUsers, c.User.ID)
		case ApplyOrg:
			k.orgs = append(k.orgs, c.Org.ID)
		case DeleteOrg:
			k.orgs, k.memsOfOrgs = append(k.orgs, c.Org.ID), append(k.memsOfOrgs, c.Org.ID)
		case ApplyMembership, DeleteMembership:
			m := c.Membership
			k.mems = append(k.mems, m.ID)
			if m.OrganizationID != "" {
				k.orgs = append(k.orgs, m.OrganizationID)
			}
			if m.UserID != "" {
				k.users, k.memsOfUsers = append(k.users, m.UserID), append(k.memsOfUsers, m.UserID)
			}
		case PruneMemberships:
			k.users, k.memsOfUsers = append(k.users, c.UserID), append(k.memsOfUsers, c.UserID)
		}
	}
	return k
}

// maxKeyLocks is the most advisory locks a batch takes one by one; a larger
// batch (a backfill page) takes the one exclusive lock every other batch
// takes shared. Each lock is a slot in Postgres' shared lock table
// (max_locks_per_transaction × max_connections, 6,400 by default).
const maxKeyLocks = 128

// lockIDs are the advisory lock ids of the batch's keys, sorted: every
// batch takes its locks in this one order. The first is the batch lock:
// taken shared with the keys, or alone and exclusive.
func (k keys) lockIDs() (ids []int64, exclusive bool) {
	set := map[int64]bool{}
	add := func(prefix string, list []string) {
		for _, key := range list {
			h := fnv.New64a()
			h.Write([]byte(prefix))
			h.Write([]byte(key))
			set[int64(h.Sum64())] = true
		}
	}
	add("user:", k.users)
	add("email:", k.emails)
	add("org:", k.orgs)
	add("membership:", k.mems)
	delete(set, batchLock)
	if len(set) == 0 {
		return nil, false
	}
	if len(set) > maxKeyLocks {
		return []int64{batchLock}, true
	}
	ids = make([]int64, 0, len(set)+1)
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return append([]int64{batchLock}, ids...), false
}

// batchLock is the advisory lock id every batch takes: shared with its
// key locks, or exclusive in their place.
const batchLock int64 = 0x75736572_73796e63 // "usersync"

// queryer runs the engine's statements in the transaction.
type queryer struct {
	tx      *gorm.DB
	dialect Dialect
}

func (q queryer) lock(k keys) error {
	if q.dialect != Postgres {
		return nil
	}
	ids, exclusive := k.lockIDs()
	if len(ids) == 0 {
		return nil
	}
	query := lockKeysSQL
	if exclusive {
		query = lockBatchSQL
	}
	if _, err := q.exec(query, ids); err != nil {
		return fmt.Errorf("lock %d keys: %w", len(ids), err)
	}
	return nil
}

// read loads the rows the batch's changes and rules reach into st.
func (q queryer) read(st *state, k keys) error {
	if len(k.users) > 0 {
		err := q.each(readUsersSQL[q.dialect], []any{q.list(k.users), q.list(k.emails)}, func(scan func(...any) error) error {
			var u User
			var deleted bool
			if err := scan(&u.ID, &u.Email, &u.Tier, &u.ClerkUpdatedAt, &deleted); err != nil {
				return err
			}
			if _, seen := st.users[u.ID]; seen {
				return nil // a row can come twice: by id and by email
			}
			if deleted {
				u.Email, u.DeletedAt = nil, &st.at // a tombstone's deleted_at is never written again
			}
			r := &userRow{User: u, inDB: true, dbEmail: u.Email}
			st.users[u.ID] = r
			st.setEmail(r, u.Email)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %d users: %w", len(k.users), err)
		}
	}
	if len(k.orgs) > 0 {
		err := q.each(readOrgsSQL[q.dialect], []any{q.list(k.orgs)}, func(scan func(...any) error) error {
			var o Organization
			var deleted bool
			if err := scan(&o.ID, &o.Name, &o.Slug, &o.ImageURL, &o.CreatedBy, &o.Tier, &o.MembersCount,
				&o.ClerkUpdatedAt, &deleted); err != nil {
				return err
			}
			if deleted {
				o.DeletedAt = &st.at
			}
			st.orgs[o.ID] = &orgRow{Organization: o}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %d organizations: %w", len(k.orgs), err)
		}
	}
	if len(k.mems)+len(k.memsOfUsers)+len(k.memsOfOrgs) > 0 {
		args := []any{q.list(k.mems), q.list(k.memsOfUsers), q.list(k.memsOfOrgs)}
		err := q.each(readMembershipsSQL[q.dialect], args, func(scan func(...any) error) error {
			var m Membership
			var deleted bool
			if err := scan(&m.ID, &m.OrganizationID, &m.UserID, &m.Role, &m.ClerkCreatedAt, &m.ClerkUpdatedAt,
				&deleted); err != nil {
				return err
			}
			if deleted {
				m.DeletedAt = &st.at
			}
			if _, seen := st.mems[m.ID]; seen {
				return nil
			}
			r := &memRow{Membership: m}
			st.mems[m.ID] = r
			st.byUser[m.UserID] = append(st.byUser[m.UserID], r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read memberships: %w", err)
		}
	}
	return nil
}

// write makes the tables match the decided state: first the addresses live
// rows give up (so no moment has two live rows with one email), then the
// users, organizations and memberships that changed, memberships becoming
// tombstones before those becoming live (the unique index on live pairs).
func (q queryer) write(st *state) error {
	var release, released []string // ids, and the emails they give up
	var users []*User
	for _, u := range sortedValues(st.users) {
		if u.inDB && u.dbEmail != nil && (u.Email == nil || *u.Email != *u.dbEmail) {
			release, released = append(release, u.ID), append(released, *u.dbEmail)
		}
		if u.dirty {
			users = append(users, &u.User)
		}
	}
	if len(release) > 0 {
		args := []any{release, released, st.at}
		if q.dialect == SQLite {
			args = []any{q.list(release), st.at}
		}
		if _, err := q.exec(releaseEmailsSQL[q.dialect], args...); err != nil {
			return fmt.Errorf("release %d emails: %w", len(release), err)
		}
	}
	var orgs []*Organization
	for _, o := range sortedValues(st.orgs) {
		if o.dirty {
			orgs = append(orgs, &o.Organization)
		}
	}
	var mems []*Membership
	for _, m := range sortedValues(st.mems) {
		if m.dirty {
			mems = append(mems, &m.Membership)
		}
	}
	sort.SliceStable(mems, func(i, j int) bool { return mems[i].Deleted() && !mems[j].Deleted() })
	if err := upsert(q, usersTable, users, st.bound); err != nil {
		return err
	}
	if err := upsert(q, orgsTable, orgs, st.bound); err != nil {
		return err
	}
	return upsert(q, membershipsTable, mems, st.bound)
}

// writeChunk bounds the rows of one write statement: SQLite takes one
// parameter a column, and a statement at most 32,766.
const writeChunk = 500

// upsert writes rows with t's statement, a chunk at a time. Each row was
// decided under the batch's locks, so the statement's guard (rules 1, 5
// and 7) passes for every one; a row it skips was changed by a writer
// outside the engine, and the batch fails rather than report a write it
// did not make.
func upsert[R any](q queryer, t *table[R], rows []*R, bound int64) error {
	for start := 0; start < len(rows); start += writeChunk {
		chunk := rows[start:min(start+writeChunk, len(rows))]
		query, args := t.statement(q.dialect, chunk, bound)
		n, err := q.exec(query, args...)
		if err == nil && n != int64(len(chunk)) {
			err = fmt.Errorf("wrote %d of them: a row changed outside usersync's locks", n)
		}
		if err != nil {
			return fmt.Errorf("write %d %s: %w", len(chunk), t.name, err)
		}
	}
	return nil
}

func (q queryer) exec(query string, args ...any) (int64, error) {
	res, err := q.tx.Statement.ConnPool.ExecContext(q.tx.Statement.Context, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// each runs a query and calls fn with each row's Scan.
func (q queryer) each(query string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := q.tx.Statement.ConnPool.QueryContext(q.tx.Statement.Context, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// list passes a list of strings: an array on Postgres, JSON on SQLite.
func (q queryer) list(l []string) any { return listArg(q.dialect, l) }

// sortedValues returns m's values in key order, so writes are deterministic.
func sortedValues[V any](m map[string]*V) []*V {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*V, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}
