package models

import "time"

// This file decides every change the engine (engine.go) applies, against
// the rows it read, one change after another, and writes nothing. It is
// where each rule of contract §4 and §7 is decided:
//
//	rule 1  newest wins ......................... orderVerdict
//	rule 2  primary email and phone ............. clerkapi (the mapping from Clerk's JSON), not here
//	rule 3  email ownership ..................... takeEmail, outranks
//	rule 4  tier belongs to the application ..... applyUser, applyOrg: only a valid tier is written
//	rule 5  deletion is final ................... orderVerdict (Gone), deleteUser
//	rule 6  nothing acknowledged before commit .. engine.go: Apply answers after its transaction commits
//	rule 7  no write without news ............... a change that decides nothing marks no row dirty
//	rule 8  organizations ....................... applyOrg, deleteOrg
//	rule 9  memberships ......................... applyMembership, deleteMembership, mustBeTombstone, deleteUser's cascade
//	rule 10 one live membership a pair .......... applyMembership, newerMembership
//	rule 11 a bounded clock ..................... orderVerdict and outranks with bound (clock.go)
//
// The write statements (sql.go) repeat rules 1, 5 and 7 in their
// ON CONFLICT … WHERE, so a row is never overwritten by an older snapshot
// or brought back from a tombstone, whatever wrote it.

// state is what one batch knows about the rows it touches: each row as
// read, then as the batch's changes leave it.
type state struct {
	src   Source
	at    time.Time
	bound int64 // the largest clerk_updated_at that orders the batch's snapshots (rule 11)

	users   map[string]*userRow
	holders map[string]string // live email → id of the user holding it (rule 3)
	orgs    map[string]*orgRow
	mems    map[string]*memRow
	byUser  map[string][]*memRow // every known membership of a user, live or not
}

type userRow struct {
	User
	inDB    bool
	dbEmail *string // the live row's email as read: given up before the write when it changes
	dirty   bool
}

type orgRow struct {
	Organization
	dirty bool
}

type memRow struct {
	Membership
	dirty bool
}

func newState(src Source, at time.Time) *state {
	return &state{
		src: src, at: at, bound: orderBound(src, at),
		users: map[string]*userRow{}, holders: map[string]string{},
		orgs: map[string]*orgRow{}, mems: map[string]*memRow{}, byUser: map[string][]*memRow{},
	}
}

// decide applies the changes in order and returns each one's outcome.
func (st *state) decide(changes []Change) []Outcome {
	out := make([]Outcome, len(changes))
	for i, c := range changes {
		switch c.Kind {
		case ApplyUser:
			out[i] = st.applyUser(c.User.normalized())
		case DeleteUser:
			out[i] = st.deleteUser(c.User.ID)
		case ApplyOrg:
			out[i] = st.applyOrg(c.Org)
		case DeleteOrg:
			out[i] = st.deleteOrg(c.Org.ID)
		case ApplyMembership:
			out[i] = st.applyMembership(c.Membership)
		case DeleteMembership:
			out[i] = st.deleteMembership(c.Membership)
		case PruneMemberships:
			out[i] = st.prune(c.UserID, c.Keep, c.Before)
		default:
			out[i] = Unchanged
		}
	}
	return out
}

// orderVerdict is rules 1 and 5 for a row with clerk_updated_at rowAt:
// Gone, Unchanged or Stale when a snapshot dated snapAt must not be
// applied, "" when it must. A live row dated beyond bound orders nothing
// (rule 11): any other snapshot replaces it.
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

func (st *state) user(id string) *userRow {
	u, ok := st.users[id]
	if !ok {
		u = &userRow{User: User{ID: id, Tier: TierFree}}
		st.users[id] = u
	}
	return u
}

// exists reports whether the user has a row, read or decided.
func (u *userRow) exists() bool { return u.inDB || u.dirty }

// applyUser is rules 1, 3, 4, 5 and 11 for a user snapshot.
func (st *state) applyUser(s Snapshot) Outcome {
	u := st.user(s.ID)
	if v := orderVerdict(u.exists(), u.Deleted(), u.ClerkUpdatedAt, s.UpdatedAt, st.bound); v != "" {
		return v
	}
	outcome := Updated
	if !u.exists() {
		outcome = Created
		u.CreatedAt = st.at
	}
	email := st.takeEmail(u, s)
	st.setEmail(u, email)
	tier := u.Tier
	if s.Tier != "" {
		tier = s.Tier // rule 4: only a valid tier named by Clerk replaces the application's
	}
	u.User = User{
		ID: s.ID, Email: email, FirstName: s.FirstName, LastName: s.LastName, ImageURL: s.ImageURL,
		Username: s.Username, PhoneNumber: s.PhoneNumber, Tier: tier, ClerkUpdatedAt: s.UpdatedAt,
		CreatedAt: u.CreatedAt, EmailVerified: email != nil && s.EmailVerified, RawJSON: rawOrNil(s.RawJSON),
		SyncedAt: &st.at,
	}
	st.touchUser(u)
	return outcome
}

// takeEmail is rule 3: the snapshot's email, unless another live row holds
// it and outranks the snapshot, in which case none. A holder the snapshot
// outranks gives the address up.
func (st *state) takeEmail(u *userRow, s Snapshot) *string {
	if s.Email == nil {
		return nil
	}
	holderID, held := st.holders[*s.Email]
	if !held || holderID == u.ID {
		return s.Email
	}
	holder := st.users[holderID]
	if outranks(holder, s, st.bound) {
		return nil
	}
	st.setEmail(holder, nil)
	holder.EmailVerified = false
	if holder.dirty {
		holder.UpdatedAt = st.at
	}
	return s.Email
}

// outranks reports whether a live row holding the snapshot's email keeps it
// (rule 3): the larger clerk_updated_at wins, and on a tie the larger id, so
// the result does not depend on arrival order. A holder dated beyond bound
// keeps nothing (rule 11).
func outranks(holder *userRow, s Snapshot, bound int64) bool {
	if holder.ClerkUpdatedAt > bound {
		return false
	}
	if holder.ClerkUpdatedAt != s.UpdatedAt {
		return holder.ClerkUpdatedAt > s.UpdatedAt
	}
	return holder.ID > s.ID
}

// setEmail moves the row to email, keeping holders current.
func (st *state) setEmail(u *userRow, email *string) {
	if u.Email != nil && st.holders[*u.Email] == u.ID {
		delete(st.holders, *u.Email)
	}
	u.Email = email
	if email != nil {
		st.holders[*email] = u.ID
	}
}

// deleteUser is rule 5: the row keeps its id, tier and clerk_updated_at and
// loses its personal data; an unknown id becomes a tombstone too, so a late
// user.created cannot revive it. A tombstone is never changed again. The
// user's live memberships become tombstones with it (rule 9), also when the
// row already was one, so a membership that raced the first deletion is
// caught by the redelivery.
func (st *state) deleteUser(id string) Outcome {
	u := st.user(id)
	for _, m := range st.byUser[id] {
		if !m.Deleted() {
			st.tombstone(m)
		}
	}
	if u.Deleted() {
		return Gone
	}
	if !u.exists() {
		u.CreatedAt = st.at
	}
	st.setEmail(u, nil)
	u.User = User{ID: id, Tier: u.Tier, ClerkUpdatedAt: u.ClerkUpdatedAt, CreatedAt: u.CreatedAt,
		DeletedAt: &st.at}
	st.touchUser(u)
	return Deleted
}

func (st *state) touchUser(u *userRow) {
	u.UpdatedAt, u.SyncSource, u.dirty = st.at, st.src, true
}

// applyOrg is rule 8 for a snapshot: newest wins (rule 1; a row dated
// beyond the bound yields, rule 11), tombstones are final (rule 5), tier
// only from a valid public_metadata.tier (rule 4).
func (st *state) applyOrg(s OrgSnapshot) Outcome {
	r := st.orgs[s.ID]
	rowAt := int64(0)
	if r != nil {
		rowAt = r.ClerkUpdatedAt
	}
	if v := orderVerdict(r != nil, r != nil && r.Deleted(), rowAt, s.UpdatedAt, st.bound); v != "" {
		return v
	}
	outcome := Updated
	if r == nil {
		r = &orgRow{Organization: Organization{ID: s.ID, Tier: TierFree, CreatedAt: st.at}}
		st.orgs[s.ID] = r
		outcome = Created
	}
	o := &r.Organization
	o.Name, o.Slug, o.ImageURL, o.CreatedBy, o.MembersCount = s.Name, s.Slug, s.ImageURL, s.CreatedBy, s.MembersCount
	if s.Tier != "" {
		o.Tier = s.Tier
	}
	o.ClerkUpdatedAt, o.RawJSON = s.UpdatedAt, rawOrNil(s.RawJSON)
	st.touchOrg(r)
	return outcome
}

// deleteOrg is rule 8's deletion: a PII-free final tombstone (tier kept),
// and every live membership of the organization tombstoned with it.
func (st *state) deleteOrg(id string) Outcome {
	r := st.orgs[id]
	outcome := Deleted
	switch {
	case r == nil:
		r = &orgRow{Organization: Organization{ID: id, Tier: TierFree, CreatedAt: st.at}}
		st.orgs[id] = r
	case r.Deleted():
		outcome = Gone
	}
	if outcome == Deleted {
		o := &r.Organization
		o.Name, o.Slug, o.ImageURL, o.RawJSON = nil, nil, nil, nil
		o.DeletedAt = &st.at
		st.touchOrg(r)
	}
	for _, m := range st.mems {
		if m.OrganizationID == id && !m.Deleted() {
			st.tombstone(m)
		}
	}
	return outcome
}

func (st *state) touchOrg(r *orgRow) {
	r.UpdatedAt, r.SyncSource, r.dirty = st.at, st.src, true
}

// applyMembership is rules 9 and 10 for a snapshot.
func (st *state) applyMembership(s MembershipSnapshot) Outcome {
	r := st.mems[s.ID]
	if r != nil {
		if v := orderVerdict(true, r.Deleted(), r.ClerkUpdatedAt, s.UpdatedAt, st.bound); v != "" {
			return v
		}
	}
	outcome := Updated
	if r == nil {
		r = st.newMembership(s)
		outcome = Created
	}
	m := &r.Membership
	m.Role, m.ClerkUpdatedAt, m.RawJSON = s.Role, s.UpdatedAt, rawOrNil(s.RawJSON)
	st.touchMembership(r)
	if st.mustBeTombstone(r) {
		st.tombstone(r)
		return Deleted
	}
	for _, other := range st.byUser[m.UserID] {
		if other != r && other.OrganizationID == m.OrganizationID && !other.Deleted() {
			st.tombstone(other) // rule 10: r is the newer of the pair
		}
	}
	return outcome
}

// newMembership adds a row for a membership not seen before.
func (st *state) newMembership(s MembershipSnapshot) *memRow {
	r := &memRow{Membership: Membership{
		ID: s.ID, OrganizationID: s.OrganizationID, UserID: s.UserID, Role: s.Role,
		ClerkCreatedAt: s.CreatedAt, ClerkUpdatedAt: s.UpdatedAt, CreatedAt: st.at,
	}}
	st.mems[s.ID] = r
	st.byUser[s.UserID] = append(st.byUser[s.UserID], r)
	return r
}

// mustBeTombstone: a membership of a tombstoned organization or user, or
// one with a newer membership of the same pair (live or not: Clerk keeps
// one membership per pair, so a newer one proves this one was removed), is
// stored as a tombstone (rules 9 and 10).
func (st *state) mustBeTombstone(r *memRow) bool {
	if o := st.orgs[r.OrganizationID]; o != nil && o.Deleted() {
		return true
	}
	if u := st.users[r.UserID]; u != nil && u.Deleted() {
		return true
	}
	for _, other := range st.byUser[r.UserID] {
		if other != r && other.OrganizationID == r.OrganizationID && newerMembership(other.Membership, r.Membership) {
			return true
		}
	}
	return false
}

// newerMembership orders two memberships of a pair (rule 10): the larger
// clerk_created_at, and on a tie the larger id, so the answer does not
// depend on arrival order.
func newerMembership(a, b Membership) bool {
	if a.ClerkCreatedAt != b.ClerkCreatedAt {
		return a.ClerkCreatedAt > b.ClerkCreatedAt
	}
	return a.ID > b.ID
}

// deleteMembership is rule 9's deletion: final for the id whatever its
// updated_at. An unknown id becomes a tombstone holding what the payload
// says, so a late created event cannot revive it and rule 10 still sees it.
func (st *state) deleteMembership(s MembershipSnapshot) Outcome {
	r := st.mems[s.ID]
	switch {
	case r == nil:
		r = st.newMembership(s)
	case r.Deleted():
		return Gone
	}
	st.tombstone(r)
	return Deleted
}

// prune tombstones the user's live memberships a complete listing did not
// return, when they were created before the listing began.
func (st *state) prune(userID string, keep map[string]bool, before int64) Outcome {
	outcome := Unchanged
	for _, m := range st.byUser[userID] {
		if !m.Deleted() && !keep[m.ID] && m.ClerkCreatedAt < before {
			st.tombstone(m)
			outcome = Deleted
		}
	}
	return outcome
}

// tombstone makes a membership row final and drops raw_json, which holds
// the member's name and identifier.
func (st *state) tombstone(r *memRow) {
	r.DeletedAt, r.RawJSON = &st.at, nil
	st.touchMembership(r)
}

func (st *state) touchMembership(r *memRow) {
	r.UpdatedAt, r.SyncSource, r.dirty = st.at, st.src, true
}

func rawOrNil(raw string) *string {
	if raw == "" {
		return nil
	}
	return &raw
}
