package models

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"time"

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
	return inTx(ctx, db, false, func(s session) ([]Outcome, error) {
		return apply(ctx, s, changes, src, now())
	})
}

// DryRun reports what Apply would do and writes nothing: it runs the same
// transaction and rolls it back.
func DryRun(ctx context.Context, db *gorm.DB, changes []Change, src Source) ([]Outcome, error) {
	return inTx(ctx, db, true, func(s session) ([]Outcome, error) {
		return apply(ctx, s, changes, src, now())
	})
}

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

// now is the row time: UTC, cut to the microseconds Postgres keeps, so a value
// read back equals the value written on both databases.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// apply runs the four steps in the session: lock and read in one run,
// decide, write in a second.
func apply(ctx context.Context, s session, changes []Change, src Source, at time.Time) ([]Outcome, error) {
	st := newState(src, at)
	if err := lockAndRead(ctx, s, st, keysOf(changes)); err != nil {
		return nil, err
	}
	out := st.decide(changes)
	return out, write(ctx, s, st)
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

// lockAndRead locks k's keys and loads the rows the batch's changes and
// rules reach into st, in one run, after the steps before (in the same
// run). The reads start after the locks are held, so they see every batch
// that held a key before.
func lockAndRead(ctx context.Context, s session, st *state, k keys, before ...*step) error {
	d := s.dialect()
	steps := before
	if ids, exclusive := k.lockIDs(); d == Postgres && len(ids) > 0 {
		query := lockKeysSQL
		if exclusive {
			query = lockBatchSQL
		}
		steps = append(steps, &step{what: fmt.Sprintf("lock %d keys", len(ids)), sql: query, args: []any{ids}})
	}
	var reads []*step
	if len(k.users) > 0 {
		reads = append(reads, &step{what: fmt.Sprintf("read %d users", len(k.users)), sql: readUsersSQL[d],
			args: []any{listArg(d, k.users), listArg(d, k.emails)}, row: func(scan func(...any) error) error {
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
			}})
	}
	if len(k.orgs) > 0 {
		reads = append(reads, &step{what: fmt.Sprintf("read %d organizations", len(k.orgs)), sql: readOrgsSQL[d],
			args: []any{listArg(d, k.orgs)}, row: func(scan func(...any) error) error {
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
			}})
	}
	if len(k.mems)+len(k.memsOfUsers)+len(k.memsOfOrgs) > 0 {
		reads = append(reads, &step{what: "read memberships", sql: readMembershipsSQL[d],
			args: []any{listArg(d, k.mems), listArg(d, k.memsOfUsers), listArg(d, k.memsOfOrgs)},
			row: func(scan func(...any) error) error {
				var m Membership
				var deleted bool
				if err := scan(&m.ID, &m.OrganizationID, &m.UserID, &m.Role, &m.ClerkCreatedAt, &m.ClerkUpdatedAt,
					&deleted); err != nil {
					return err
				}
				if _, seen := st.mems[m.ID]; seen {
					return nil
				}
				if deleted {
					m.DeletedAt = &st.at
				}
				r := &memRow{Membership: m}
				st.mems[m.ID] = r
				st.byUser[m.UserID] = append(st.byUser[m.UserID], r)
				return nil
			}})
	}
	if d == Postgres && len(reads) > 0 {
		// The reads are planned with their values at every run; the
		// writes keep the plans Postgres caches for prepared statements.
		reads = append(append([]*step{{what: "plan reads", sql: planReadsWithValues}}, reads...),
			&step{what: "plan reads", sql: planAsConfigured})
	}
	return s.run(ctx, append(steps, reads...)...)
}

// write makes the tables match the decided state in the session's last
// run, then the steps after, and commits: first the addresses live rows give up (so no moment has two
// live rows with one email), then the users, organizations and memberships
// that changed, memberships becoming tombstones before those becoming live
// (the unique index on live pairs).
func write(ctx context.Context, s session, st *state, after ...*step) error {
	d := s.dialect()
	var steps []*step
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
		if d == SQLite {
			args = []any{listArg(d, release), st.at}
		}
		steps = append(steps, &step{what: fmt.Sprintf("release %d emails", len(release)), sql: releaseEmailsSQL[d], args: args})
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
	var upserts []*step
	upserts = upsertSteps(upserts, d, usersTable, users, st.bound)
	upserts = upsertSteps(upserts, d, orgsTable, orgs, st.bound)
	upserts = upsertSteps(upserts, d, membershipsTable, mems, st.bound)
	if err := s.finish(ctx, append(append(steps, upserts...), after...)...); err != nil {
		return err
	}
	// Each row was decided under the batch's locks, so the guard (rules 1,
	// 5 and 7) passes for every one. A row it skipped was changed by a
	// writer outside the engine: the table is still right (the guard saw
	// to it), but the outcomes are not, so the batch reports an error
	// (on Postgres after its commit, which went in the same round trip).
	for _, u := range upserts {
		if u.affected != u.want {
			return fmt.Errorf("%s: wrote %d of them: a row changed outside usersync's locks", u.what, u.affected)
		}
	}
	return nil
}

// writeChunk bounds the rows of one write statement: SQLite takes one
// parameter a column, and a statement at most 32,766.
const writeChunk = 500

// upsertSteps adds the statements that write rows with t, a chunk each.
func upsertSteps[R any](steps []*step, d Dialect, t *table[R], rows []*R, bound int64) []*step {
	for start := 0; start < len(rows); start += writeChunk {
		chunk := rows[start:min(start+writeChunk, len(rows))]
		query, args := t.statement(d, chunk, bound)
		st := &step{what: fmt.Sprintf("write %d %s", len(chunk), t.name), sql: query, args: args,
			want: int64(len(chunk))}
		if d == Postgres {
			st.row = func(scan func(...any) error) error { return scan(&st.affected) } // the statement counts
		}
		steps = append(steps, st)
	}
	return steps
}

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
