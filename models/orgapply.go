package models

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ApplyOrgChanges applies changes to the organizations and
// organization_memberships tables in one transaction, in order, following
// contract rules 8–10 (and 1, 6, 7), and returns each change's outcome.
func ApplyOrgChanges(ctx context.Context, db *gorm.DB, changes []OrgChange, src Source) ([]Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB, _ bool) ([]Outcome, error) {
		return applyOrgChanges(tx, changes, src, now())
	})
}

// DryRunOrgChanges reports what ApplyOrgChanges would do and writes nothing.
func DryRunOrgChanges(ctx context.Context, db *gorm.DB, changes []OrgChange, src Source) ([]Outcome, error) {
	return dryRun(ctx, db, func(tx *gorm.DB, _ bool) ([]Outcome, error) {
		return applyOrgChanges(tx, changes, src, now())
	})
}

// MembershipChanges is what a membership event says: its organization
// snapshot (rule 8), then the membership itself (kind is ApplyMembership
// or DeleteMembership).
func MembershipChanges(kind OrgChangeKind, m MembershipSnapshot) []OrgChange {
	var out []OrgChange
	if m.Org != nil {
		out = append(out, OrgChange{Kind: ApplyOrg, Org: *m.Org})
	}
	return append(out, OrgChange{Kind: kind, Membership: m})
}

// applyOrgChanges is the one write path of the two tables. It locks what
// the changes touch, reads the rows involved (without raw_json), applies
// the rules to them in memory, in order, and writes the rows that changed
// with one multi-row upsert per table.
//
// Concurrency: the rules span rows (an organization's deletion tombstones
// its memberships, a user's deletion theirs, rule 10 compares memberships
// of one pair), so on Postgres each transaction first takes
// transaction-scoped advisory locks on the organizations and users it
// touches (released at commit, so safe through a transaction pooler).
// Every writer of a membership holds its organization's or its user's
// lock, and every writer that makes one live holds both. SQLite runs one
// writer at a time (BEGIN IMMEDIATE).
func applyOrgChanges(tx *gorm.DB, changes []OrgChange, src Source, at time.Time) ([]Outcome, error) {
	k := keysOf(changes)
	if err := lockOrgKeys(tx, k); err != nil {
		return nil, err
	}
	st, err := loadOrgState(tx, k, src, at)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(changes))
	for i, c := range changes {
		out[i] = st.apply(c)
	}
	return out, st.write(tx)
}

// orgState is the rows a batch of changes reads and writes.
type orgState struct {
	src   Source
	at    time.Time
	bound int64 // the largest clerk_updated_at that orders the batch's snapshots (rule 11)

	orgs      map[string]*orgRow
	mems      map[string]*memRow
	byUser    map[string][]*memRow // every known membership of a user, live or not
	deadUsers map[string]bool      // users whose row is a tombstone
}

type orgRow struct {
	Organization
	dirty bool
}

type memRow struct {
	Membership
	dirty bool
}

func (st *orgState) apply(c OrgChange) Outcome {
	switch c.Kind {
	case ApplyOrg:
		return st.applyOrg(c.Org)
	case DeleteOrg:
		return st.deleteOrg(c.Org.ID)
	case ApplyMembership:
		return st.applyMembership(c.Membership)
	case DeleteMembership:
		return st.deleteMembership(c.Membership)
	case PruneMemberships:
		return st.prune(c.UserID, c.Keep, c.Before)
	}
	return Unchanged
}

// applyOrg is rule 8 for a snapshot: newest wins (a row dated beyond the
// bound yields, rule 11), tombstones are final, tier only from a valid
// public_metadata.tier (rule 4).
func (st *orgState) applyOrg(s OrgSnapshot) Outcome {
	r := st.orgs[s.ID]
	if v := orderVerdict(r != nil, r != nil && r.Deleted(), rowAt(r), s.UpdatedAt, st.bound); v != "" {
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

func rowAt(r *orgRow) int64 {
	if r == nil {
		return 0
	}
	return r.ClerkUpdatedAt
}

// deleteOrg is rule 8's deletion: a PII-free final tombstone (tier kept),
// and every live membership of the organization tombstoned with it.
func (st *orgState) deleteOrg(id string) Outcome {
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

func (st *orgState) touchOrg(r *orgRow) {
	r.UpdatedAt, r.SyncSource, r.dirty = st.at, st.src, true
}

// applyMembership is rules 9 and 10 for a snapshot.
func (st *orgState) applyMembership(s MembershipSnapshot) Outcome {
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
	r.UpdatedAt, r.SyncSource, r.dirty = st.at, st.src, true
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
func (st *orgState) newMembership(s MembershipSnapshot) *memRow {
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
func (st *orgState) mustBeTombstone(r *memRow) bool {
	if o := st.orgs[r.OrganizationID]; (o != nil && o.Deleted()) || st.deadUsers[r.UserID] {
		return true
	}
	for _, other := range st.byUser[r.UserID] {
		if other != r && other.OrganizationID == r.OrganizationID && newerMembership(other.Membership, r.Membership) {
			return true
		}
	}
	return false
}

// newerMembership orders two memberships of a pair: the larger
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
func (st *orgState) deleteMembership(s MembershipSnapshot) Outcome {
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
func (st *orgState) prune(userID string, keep map[string]bool, before int64) Outcome {
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
func (st *orgState) tombstone(r *memRow) {
	r.DeletedAt, r.RawJSON = &st.at, nil
	r.UpdatedAt, r.SyncSource, r.dirty = st.at, st.src, true
}

func rawOrNil(raw string) *string {
	if raw == "" {
		return nil
	}
	return &raw
}

// orgKeys are what a batch touches: organizations (to apply or delete,
// or of a membership), users (of a membership, or to prune), memberships.
type orgKeys struct {
	orgs, deletedOrgs, users, mems []string
}

func keysOf(changes []OrgChange) orgKeys {
	var k orgKeys
	for _, c := range changes {
		switch c.Kind {
		case ApplyOrg:
			k.orgs = append(k.orgs, c.Org.ID)
		case DeleteOrg:
			k.orgs, k.deletedOrgs = append(k.orgs, c.Org.ID), append(k.deletedOrgs, c.Org.ID)
		case ApplyMembership, DeleteMembership:
			m := c.Membership
			k.mems = append(k.mems, m.ID)
			if m.OrganizationID != "" {
				k.orgs = append(k.orgs, m.OrganizationID)
			}
			if m.UserID != "" {
				k.users = append(k.users, m.UserID)
			}
		case PruneMemberships:
			k.users = append(k.users, c.UserID)
		}
	}
	return k
}

// lockOrgKeys takes the Postgres transaction-scoped advisory locks on the
// organizations and users the changes touch (k), in a stable order.
func lockOrgKeys(tx *gorm.DB, k orgKeys) error {
	if DialectOf(tx) != Postgres {
		return nil
	}
	set := map[string]bool{}
	for _, id := range k.orgs {
		set["org:"+id] = true
	}
	for _, id := range k.users {
		set["user:"+id] = true
	}
	keys := make([]string, 0, len(set))
	for key := range set {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil
	}
	_, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context,
		`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`, keys)
	if err != nil {
		return fmt.Errorf("lock %d organizations and users: %w", len(keys), err)
	}
	return nil
}

// orgColumns and memColumns are what the apply reads: every column but
// raw_json, which a write either replaces or clears.
const (
	orgColumns = "id, name, slug, image_url, created_by, tier, members_count, clerk_updated_at, created_at, updated_at, deleted_at, sync_source"
	memColumns = "id, organization_id, user_id, role, clerk_created_at, clerk_updated_at, created_at, updated_at, deleted_at, sync_source"
)

// loadOrgState reads the organizations the changes name (k), every
// membership of their users (rule 10 and pruning) and of organizations being
// deleted (the cascade), and which of their users are tombstones.
func loadOrgState(tx *gorm.DB, k orgKeys, src Source, at time.Time) (*orgState, error) {
	st := &orgState{src: src, at: at, bound: orderBound(src, at), orgs: map[string]*orgRow{}, mems: map[string]*memRow{},
		byUser: map[string][]*memRow{}, deadUsers: map[string]bool{}}
	var orgs []Organization
	if len(k.orgs) > 0 {
		if err := tx.Select(orgColumns).Where("id IN ?", k.orgs).Find(&orgs).Error; err != nil {
			return nil, fmt.Errorf("read %d organizations: %w", len(k.orgs), err)
		}
	}
	for i := range orgs {
		st.orgs[orgs[i].ID] = &orgRow{Organization: orgs[i]}
	}
	if len(k.mems)+len(k.users)+len(k.deletedOrgs) > 0 {
		var mems []Membership
		q := tx.Select(memColumns).Where("id IN ?", nonEmpty(k.mems)).Or("user_id IN ?", nonEmpty(k.users)).
			Or("organization_id IN ?", nonEmpty(k.deletedOrgs))
		if err := q.Find(&mems).Error; err != nil {
			return nil, fmt.Errorf("read memberships: %w", err)
		}
		for i := range mems {
			r := &memRow{Membership: mems[i]}
			st.mems[r.ID] = r
			st.byUser[r.UserID] = append(st.byUser[r.UserID], r)
		}
	}
	if len(k.users) > 0 {
		var dead []string
		err := tx.Model(&User{}).Where("id IN ? AND deleted_at IS NOT NULL", k.users).Pluck("id", &dead).Error
		if err != nil {
			return nil, fmt.Errorf("read %d users: %w", len(k.users), err)
		}
		for _, id := range dead {
			st.deadUsers[id] = true
		}
	}
	return st, nil
}

// nonEmpty keeps "IN ?" valid SQL for an empty list.
func nonEmpty(ids []string) []string {
	if len(ids) == 0 {
		return []string{""}
	}
	return ids
}

// orgWriteChunk bounds one multi-row statement (13 columns a row).
const orgWriteChunk = 500

// write stores every changed row: organizations, then memberships with
// tombstones first, so a pair's older live membership is tombstoned before
// the newer one is written live (the unique index on live pairs).
func (st *orgState) write(tx *gorm.DB) error {
	var orgs []Organization
	for _, r := range st.orgs {
		if r.dirty {
			orgs = append(orgs, r.Organization)
		}
	}
	var mems []Membership
	for _, r := range st.mems {
		if r.dirty {
			mems = append(mems, r.Membership)
		}
	}
	sort.Slice(orgs, func(i, j int) bool { return orgs[i].ID < orgs[j].ID })
	sort.Slice(mems, func(i, j int) bool {
		if mems[i].Deleted() != mems[j].Deleted() {
			return mems[i].Deleted()
		}
		return mems[i].ID < mems[j].ID
	})
	if err := writeRows(tx, "organizations", orgs, orgUpdateColumns); err != nil {
		return fmt.Errorf("write %d organizations: %w", len(orgs), err)
	}
	if err := writeRows(tx, "organization_memberships", mems, memUpdateColumns); err != nil {
		return fmt.Errorf("write %d memberships: %w", len(mems), err)
	}
	return nil
}

// The columns a write replaces: all but id and created_at. The rows were
// read under the batch's locks; writeRows still never changes a tombstone,
// so a writer that could not take a lock (a membership deletion whose
// payload names no organization or user) cannot be undone by a concurrent
// update that read the row before the deletion committed (rules 8 and 9).
var (
	orgUpdateColumns = []string{"name", "slug", "image_url", "created_by", "tier", "members_count",
		"clerk_updated_at", "updated_at", "deleted_at", "sync_source", "raw_json"}
	memUpdateColumns = []string{"organization_id", "user_id", "role", "clerk_created_at",
		"clerk_updated_at", "updated_at", "deleted_at", "sync_source", "raw_json"}
)

func writeRows[T any](tx *gorm.DB, table string, rows []T, cols []string) error {
	conflict := clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns(cols),
		Where:     clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: table + ".deleted_at IS NULL"}}},
	}
	for start := 0; start < len(rows); start += orgWriteChunk {
		chunk := rows[start:min(start+orgWriteChunk, len(rows))]
		if err := tx.Clauses(conflict).Create(&chunk).Error; err != nil {
			return err
		}
	}
	return nil
}

// tombstoneUserMemberships is rule 9's cascade of user.deleted, run in the
// users' tombstone transaction: one read and one write for all of them.
func tombstoneUserMemberships(tx *gorm.DB, userIDs []string, src Source, at time.Time) error {
	if len(userIDs) == 0 {
		return nil
	}
	changes := make([]OrgChange, len(userIDs))
	for i, id := range userIDs {
		changes[i] = OrgChange{Kind: PruneMemberships, UserID: id, Before: math.MaxInt64}
	}
	_, err := applyOrgChanges(tx, changes, src, at)
	return err
}

// applyOrgEvent applies an organization or membership event: "applied"
// when it changed either table, else "stale".
func applyOrgEvent(tx *gorm.DB, ev Event, at time.Time) (EventResult, error) {
	var changes []OrgChange
	switch ev.Kind {
	case EventOrgUpsert:
		changes = []OrgChange{{Kind: ApplyOrg, Org: ev.Org}}
	case EventOrgDelete:
		changes = []OrgChange{{Kind: DeleteOrg, Org: ev.Org}}
	case EventMembershipUpsert:
		changes = MembershipChanges(ApplyMembership, ev.Membership)
	case EventMembershipDelete:
		changes = MembershipChanges(DeleteMembership, ev.Membership)
	}
	outcomes, err := applyOrgChanges(tx, changes, SourceWebhook, at)
	if err != nil {
		return EventResult{}, err
	}
	for _, o := range outcomes {
		if o.Wrote() {
			return EventResult{Outcome: EventApplied}, nil
		}
	}
	return EventResult{Outcome: EventStale}, nil
}
