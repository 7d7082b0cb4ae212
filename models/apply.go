package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// This file is the one write path of the users table. Every path (webhook,
// login-time sync, backfill, prune) hands it a batch of changes, a single
// change being a batch of one, and it applies them in one transaction as if
// one after another, following contract §4:
//
//	rule 1  newest wins ..................... decide: verdict
//	rule 2  primary email / phone ........... clerkapi.SnapshotFromJSON (mapping); lower-cased again in normalized
//	rule 3  email ownership ................. decide: takeEmail; write: releaseSQL before upsertSQL
//	rule 4  tier belongs to the application . decide: state.tier; write: upsertSQL's two forms
//	rule 5  deletion is final ............... decide: verdict (Gone), tombstone; write: upsertSQL's guard
//	rule 6  nothing acknowledged before commit  Apply (inTx) and ProcessEvents (events.go)
//	rule 7  no write without news ........... decide writes only applied changes; upsertSQL's guard
//	rule 11 a bounded clock ................. decide: verdict, outranks (state.bound, clock.go); write: upsertSQL's guard;
//	                                          webhooks refuse a future-dated event before it: Event.CheckClock
//
// It works in three steps per chunk: read the rows the chunk touches (its
// users and the live holders of its emails), decide every change in Go
// against that state, then write the end state with at most three set-based
// statements (the addresses given up, then one upsert per tier form) whose
// SQL is built once (sql.go). The write statements repeat the ordering and
// tombstone guards and fail unless they wrote every row as decided, so a
// row another transaction changed after the read is detected, and the
// transaction runs again (inTx), then reading under row locks. On Postgres
// the writes go in the COMMIT's round trip (sendAtCommit, round.go): a
// webhook batch costs two round trips.
//
// Organizations and memberships (contract §7) have their own read, decide
// and write steps in orgapply.go, reached through the same batches:
//
//	rule 8  organizations: newest wins, deletion final and PII-free, takes its memberships  orgState.applyOrg, deleteOrg
//	rule 9  memberships: newest wins, deletion final; of a dead org or user a tombstone       orgState.applyMembership, deleteMembership; state.apply here for user.deleted
//	rule 10 one live membership per (organization, user), the later created one               orgState.applyMembership (newerMembership)
//	rule 11 a row dated beyond the clock's bound yields to an API snapshot                    orderVerdict with orgState.bound

// Change is one thing to do to the users table: apply a snapshot, or, when
// Delete is set, tombstone the user Snapshot.ID (only the id is read).
type Change struct {
	Snapshot Snapshot
	Delete   bool
}

// applyChunk is how many changes one read and one write carry (on SQLite,
// 16 parameters a row keeps a chunk far below its parameter limit; on
// Postgres each column is one array).
const applyChunk = 500

// Apply applies changes in order in one transaction and returns each one's
// outcome. A 2xx answer may be given once it returns nil: the transaction
// has committed (rule 6).
func Apply(ctx context.Context, db *gorm.DB, changes []Change, src Source) ([]Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB, lock bool) ([]Outcome, error) {
		return applyChanges(tx, changes, src, now(), lock)
	})
}

// ApplySnapshot applies one snapshot (a batch of one).
func ApplySnapshot(ctx context.Context, db *gorm.DB, s Snapshot, src Source) (Outcome, error) {
	out, err := Apply(ctx, db, []Change{{Snapshot: s}}, src)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// ApplySnapshots applies many snapshots in one transaction, as if in order.
func ApplySnapshots(ctx context.Context, db *gorm.DB, snaps []Snapshot, src Source) ([]Outcome, error) {
	return Apply(ctx, db, snapshotChanges(snaps), src)
}

// Tombstone records that Clerk deleted the user (rule 5).
func Tombstone(ctx context.Context, db *gorm.DB, id string, src Source) (Outcome, error) {
	out, err := Apply(ctx, db, []Change{{Snapshot: Snapshot{ID: id}, Delete: true}}, src)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// errDryRun rolls back a transaction that only reports what it would do.
var errDryRun = errors.New("dry run")

// DryRunSnapshots reports what ApplySnapshots would do and writes nothing:
// it runs the same transaction and rolls it back.
func DryRunSnapshots(ctx context.Context, db *gorm.DB, snaps []Snapshot, src Source) ([]Outcome, error) {
	return dryRun(ctx, db, func(tx *gorm.DB, lock bool) ([]Outcome, error) {
		return applyChanges(tx, snapshotChanges(snaps), src, now(), lock)
	})
}

// dryRun runs apply in a transaction that it always rolls back, and
// returns the outcomes apply reported.
func dryRun(ctx context.Context, db *gorm.DB, apply func(tx *gorm.DB, lock bool) ([]Outcome, error)) ([]Outcome, error) {
	out, err := inTx(ctx, db, func(tx *gorm.DB, lock bool) ([]Outcome, error) {
		out, err := apply(tx, lock)
		if err == nil {
			err = errDryRun
		}
		return out, err
	})
	if errors.Is(err, errDryRun) {
		return out, nil
	}
	return out, err
}

func snapshotChanges(snaps []Snapshot) []Change {
	changes := make([]Change, len(snaps))
	for i, s := range snaps {
		changes[i] = Change{Snapshot: s}
	}
	return changes
}

// now is the row time: UTC, cut to the microseconds Postgres keeps, so a value
// read back equals the value written on both databases.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// applyChanges runs the chunks in order inside the caller's transaction;
// each chunk reads what the chunks before it wrote (under row locks when
// lock is set: see inTx).
func applyChanges(tx *gorm.DB, changes []Change, src Source, at time.Time, lock bool) ([]Outcome, error) {
	out := make([]Outcome, 0, len(changes))
	for start := 0; start < len(changes); start += applyChunk {
		chunk := changes[start:min(start+applyChunk, len(changes))]
		var read round
		st := readUsers(&read, DialectOf(tx), chunk, lock)
		if err := read.send(tx); err != nil {
			return nil, err
		}
		outcomes, err := st.apply(tx, chunk, src, at)
		if err != nil {
			return nil, err
		}
		out = append(out, outcomes...)
	}
	return out, nil
}

// apply decides the changes against the state read and writes the result.
// A deleted user's live memberships become tombstones with it (rule 9,
// orgapply.go), also when the row was already a tombstone, so a membership
// that raced the first deletion is caught by the redelivery.
func (st *state) apply(tx *gorm.DB, changes []Change, src Source, at time.Time) ([]Outcome, error) {
	outcomes := st.decide(changes, src, at)
	if err := st.write(tx, at); err != nil {
		return nil, err
	}
	var deleted []string
	for _, c := range changes {
		if c.Delete {
			deleted = append(deleted, c.Snapshot.ID)
		}
	}
	if err := tombstoneUserMemberships(tx, deleted, src, at); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// state is what one chunk knows about the users it touches: each row as
// read, then as the chunk's changes leave it.
type state struct {
	users   map[string]*userState
	holders map[string]string // live email → id of the row holding it (rule 3)
	order   []string          // ids in first-touched order, so writes are deterministic
	bound   int64             // the largest clerk_updated_at that orders the chunk's snapshots (rule 11)
}

// userState is one users row, as read (db*) and as decided.
type userState struct {
	id        string
	exists    bool // a row exists, in the table or written by this chunk
	deleted   bool
	email     *string
	updatedAt int64 // clerk_updated_at

	inDB        bool
	dbEmail     *string // the live row's email as read
	dbUpdatedAt int64
	row         *User  // the end state to upsert; nil when the row is not written
	tier        string // the tier the last applied snapshot named, "" if none (rule 4)
	created     int    // index of the change that inserted the row, -1 if none
}

func (st *state) user(id string) *userState {
	u, ok := st.users[id]
	if !ok {
		u = &userState{id: id, created: -1}
		st.users[id] = u
		st.order = append(st.order, id)
	}
	return u
}

// decide applies the chunk's changes one after another to the state read
// and returns each one's outcome. It writes nothing.
func (st *state) decide(changes []Change, src Source, at time.Time) []Outcome {
	out := make([]Outcome, len(changes))
	st.bound = orderBound(src, at)
	for i, c := range changes {
		u := st.user(c.Snapshot.ID)
		if c.Delete {
			out[i] = st.tombstone(u, src, at)
			continue
		}
		s := c.Snapshot.normalized()
		if out[i] = verdict(u, s, st.bound); out[i] != "" {
			continue // rules 1, 5 and 7: nothing is written for it
		}
		out[i] = Updated
		if !u.exists {
			out[i], u.created = Created, i
		}
		email := st.takeEmail(u, s, at)
		st.setEmail(u, email)
		u.exists, u.updatedAt = true, s.UpdatedAt
		if s.Tier != "" {
			u.tier = s.Tier // rule 4: only a valid tier is ever written
		}
		row := s.row(email, src, at)
		u.row = &row
	}
	return out
}

// verdict is rules 1, 5 and 11 for a snapshot against its row: Gone,
// Unchanged or Stale when the snapshot must not be applied, "" when it must.
func verdict(u *userState, s Snapshot, bound int64) Outcome {
	return orderVerdict(u.exists, u.deleted, u.updatedAt, s.UpdatedAt, bound)
}

// orderVerdict is rule 1 (and the finality of tombstones) for a row with
// clerk_updated_at rowAt: Gone, Unchanged or Stale when a snapshot at
// snapAt must not be applied, "" when it must. A live row dated beyond
// bound orders nothing (rule 11): any other snapshot replaces it.
func orderVerdict(exists, deleted bool, rowAt, snapAt, bound int64) Outcome {
	switch {
	case !exists:
		return ""
	case deleted:
		return Gone
	case snapAt == rowAt:
		return Unchanged
	case snapAt < rowAt && rowAt <= bound:
		return Stale
	}
	return ""
}

// takeEmail is rule 3: the snapshot's email, unless another live row holds
// it and outranks the snapshot, in which case nil. A holder the snapshot
// outranks loses the address.
func (st *state) takeEmail(u *userState, s Snapshot, at time.Time) *string {
	if s.Email == nil {
		return nil
	}
	holderID, held := st.holders[*s.Email]
	if !held || holderID == u.id {
		return s.Email
	}
	holder := st.users[holderID]
	if outranks(holder, s, st.bound) {
		return nil
	}
	st.setEmail(holder, nil)
	if holder.row != nil {
		holder.row.Email, holder.row.EmailVerified, holder.row.UpdatedAt = nil, false, at
	}
	return s.Email
}

// outranks reports whether a live row holding the snapshot's email keeps it
// (rule 3): the larger clerk_updated_at wins, and on a tie the larger id, so
// the result does not depend on arrival order. A holder dated beyond bound
// keeps nothing (rule 11).
func outranks(holder *userState, s Snapshot, bound int64) bool {
	if holder.updatedAt > bound {
		return false
	}
	if holder.updatedAt != s.UpdatedAt {
		return holder.updatedAt > s.UpdatedAt
	}
	return holder.id > s.ID
}

// setEmail moves the row to email in the state, keeping holders current.
func (st *state) setEmail(u *userState, email *string) {
	if u.email != nil && st.holders[*u.email] == u.id {
		delete(st.holders, *u.email)
	}
	u.email = email
	if email != nil {
		st.holders[*email] = u.id
	}
}

// tombstone is rule 5: the row keeps its id, tier and clerk_updated_at and
// loses its personal data; an unknown id becomes a tombstone too, so a late
// user.created cannot revive it. A tombstone is never changed again.
func (st *state) tombstone(u *userState, src Source, at time.Time) Outcome {
	if u.deleted {
		return Gone
	}
	st.setEmail(u, nil)
	u.exists, u.deleted = true, true
	u.row = &User{
		ID: u.id, Tier: TierFree, ClerkUpdatedAt: u.updatedAt,
		CreatedAt: at, UpdatedAt: at, DeletedAt: &at, SyncSource: src,
	}
	return Deleted
}

// write makes the table match the decided state: first the addresses live
// rows give up (so no moment has two live rows with one email), then every
// row that changed, with one upsert per tier form (rule 4). The writes go
// with the transaction's COMMIT, or with its next statement.
func (st *state) write(tx *gorm.DB, at time.Time) error {
	var release []*userState
	var rows [2][]*userState // without a tier named, with one
	for _, id := range st.order {
		u := st.users[id]
		if u.inDB && u.dbEmail != nil && !sameEmail(u.dbEmail, u.email) {
			release = append(release, u)
		}
		if u.row != nil {
			g := 0
			if u.tier != "" {
				g, u.row.Tier = 1, u.tier
			}
			rows[g] = append(rows[g], u)
		}
	}
	var write round
	dialect := DialectOf(tx)
	releaseEmails(&write, dialect, release, at)
	for g, group := range rows {
		upsertUsers(&write, dialect, group, g == 1, st.bound)
	}
	return write.sendAtCommit(tx)
}

func sameEmail(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
