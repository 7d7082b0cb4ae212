package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Organization is a row of the organizations table.
type Organization struct {
	ID             string `gorm:"primaryKey"`
	Name           *string
	Slug           *string
	ImageURL       *string
	CreatedBy      *string
	Tier           string
	MembersCount   *int64
	ClerkUpdatedAt int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeletedAt      *time.Time
	SyncSource     Source
	RawJSON        *string `gorm:"column:raw_json"`
}

// Deleted reports whether the row is a tombstone.
func (o Organization) Deleted() bool { return o.DeletedAt != nil }

// Membership is a row of the organization_memberships table.
type Membership struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	UserID         string
	Role           string
	ClerkCreatedAt int64
	ClerkUpdatedAt int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeletedAt      *time.Time
	SyncSource     Source
	RawJSON        *string `gorm:"column:raw_json"`
}

// TableName is organization_memberships, Clerk's name for the object.
func (Membership) TableName() string { return "organization_memberships" }

// Deleted reports whether the row is a tombstone.
func (m Membership) Deleted() bool { return m.DeletedAt != nil }

// OrgSnapshot is one Clerk organization as the table stores it.
type OrgSnapshot struct {
	ID                              string
	Name, Slug, ImageURL, CreatedBy *string
	// Tier is TierFree, TierPro or TierMaxx when public_metadata.tier names
	// one, and "" when the snapshot says nothing about the tier (rule 4).
	Tier         string
	MembersCount *int64
	UpdatedAt    int64 // Clerk's updated_at in ms: the ordering key
	RawJSON      string
}

// MembershipSnapshot is one Clerk organization membership.
type MembershipSnapshot struct {
	ID             string
	OrganizationID string
	UserID         string // public_user_data.user_id
	Role           string
	CreatedAt      int64 // Clerk's created_at in ms: which of two memberships of a pair is newer (rule 10)
	UpdatedAt      int64
	RawJSON        string
	// Org is the organization the membership carries, applied with it
	// (rule 8); nil when the payload had none.
	Org *OrgSnapshot
}

// OrgChangeKind says what an OrgChange asks of the tables.
type OrgChangeKind int

// What Clerk can say about organizations and memberships.
const (
	ApplyOrg         OrgChangeKind = iota + 1 // organization.created/updated
	DeleteOrg                                 // organization.deleted
	ApplyMembership                           // organizationMembership.created/updated
	DeleteMembership                          // organizationMembership.deleted
	// PruneMemberships tombstones the live memberships of UserID that are
	// not in Keep and were created before Before (ms): what a complete
	// listing of the user's memberships says is gone.
	PruneMemberships
)

// OrgChange is one change to the organization tables, applied in order
// with others by ApplyOrgChanges.
type OrgChange struct {
	Kind       OrgChangeKind
	Org        OrgSnapshot        // ApplyOrg; DeleteOrg reads Org.ID only
	Membership MembershipSnapshot // ApplyMembership; DeleteMembership uses what it has
	UserID     string             // PruneMemberships
	Keep       map[string]bool    // PruneMemberships
	Before     int64              // PruneMemberships
}

// UserOrganization is one organization a user is a live member of, as the
// login-time sync answers it.
type UserOrganization struct {
	ID   string  `json:"id"`
	Name *string `json:"name"`
	Slug *string `json:"slug"`
	Role string  `json:"role"`
	Tier string  `json:"tier"`
}

// FindUserOrganizations lists the live organizations a user is a live
// member of, in the order the memberships were created.
func FindUserOrganizations(ctx context.Context, db *gorm.DB, userID string) ([]UserOrganization, error) {
	orgs, err := FindOrganizationsOf(ctx, db, []string{userID})
	if err != nil {
		return nil, err
	}
	if orgs[userID] == nil {
		return []UserOrganization{}, nil
	}
	return orgs[userID], nil
}

// membershipsOfSQL reads the live memberships of many users, each user's
// in the order they were created; liveOrgsSQL the live organizations among
// some ids. Two single-table reads, so the second is skipped when nobody
// is a member of anything.
var (
	membershipsOfSQL = map[Dialect]string{
		Postgres: `SELECT user_id, organization_id, role FROM organization_memberships
			WHERE user_id = ANY($1::text[]) AND deleted_at IS NULL ORDER BY user_id, clerk_created_at, id`,
		SQLite: `SELECT user_id, organization_id, role FROM organization_memberships
			WHERE user_id IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL
			ORDER BY user_id, clerk_created_at, id`,
	}
	liveOrgsSQL = map[Dialect]string{
		Postgres: `SELECT id, name, slug, tier FROM organizations WHERE id = ANY($1::text[]) AND deleted_at IS NULL`,
		SQLite: `SELECT id, name, slug, tier FROM organizations
			WHERE id IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL`,
	}
)

// membershipOf is a live membership as the login-time answer needs it.
type membershipOf struct{ userID, orgID, role string }

// readMemberships adds to r the read of the users' live memberships, in
// order, into the slice it returns once r is sent.
func readMemberships(r *round, dialect Dialect, userIDs []string) *[]membershipOf {
	var ms []membershipOf
	r.add(statement{
		name: fmt.Sprintf("find memberships of %d users", len(userIDs)), sql: membershipsOfSQL[dialect],
		args: []any{listArg(dialect, userIDs)},
		read: eachRow(func(rs rows) error {
			var m membershipOf
			if err := rs.Scan(&m.userID, &m.orgID, &m.role); err != nil {
				return err
			}
			ms = append(ms, m)
			return nil
		}),
	})
	return &ms
}

// organizationsOf resolves memberships to the live organizations, by user,
// in the memberships' order.
func organizationsOf(ctx context.Context, db *gorm.DB, ms []membershipOf) (map[string][]UserOrganization, error) {
	out := map[string][]UserOrganization{}
	if len(ms) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.orgID)
	}
	orgs := make(map[string]UserOrganization, len(ids))
	var r round
	dialect := DialectOf(db)
	r.add(statement{
		name: fmt.Sprintf("find %d organizations", len(ids)), sql: liveOrgsSQL[dialect],
		args: []any{listArg(dialect, ids)},
		read: eachRow(func(rs rows) error {
			var o UserOrganization
			if err := rs.Scan(&o.ID, &o.Name, &o.Slug, &o.Tier); err != nil {
				return err
			}
			orgs[o.ID] = o
			return nil
		}),
	})
	if err := readRound(ctx, db, r); err != nil {
		return nil, err
	}
	for _, m := range ms {
		if o, live := orgs[m.orgID]; live {
			o.Role = m.role
			out[m.userID] = append(out[m.userID], o)
		}
	}
	return out, nil
}

// FindOrganizationsOf is FindUserOrganizations for many users at once: by
// user id, the users with at least one live organization.
func FindOrganizationsOf(ctx context.Context, db *gorm.DB, userIDs []string) (map[string][]UserOrganization, error) {
	var r round
	ms := readMemberships(&r, DialectOf(db), userIDs)
	if err := readRound(ctx, db, r); err != nil {
		return nil, fmt.Errorf("find organizations of %d users: %w", len(userIDs), err)
	}
	orgs, err := organizationsOf(ctx, db, *ms)
	if err != nil {
		return nil, fmt.Errorf("find organizations of %d users: %w", len(userIDs), err)
	}
	return orgs, nil
}

// EachLiveOrgID calls fn with the ids of live organizations in id order.
func EachLiveOrgID(ctx context.Context, db *gorm.DB, fn func(id string) error) error {
	return eachLiveID(ctx, db.Model(&Organization{}), fn)
}

// EachLiveMembershipID calls fn with the ids of live memberships created
// in Clerk before before (ms), in id order.
func EachLiveMembershipID(ctx context.Context, db *gorm.DB, before int64, fn func(id string) error) error {
	return eachLiveID(ctx, db.Model(&Membership{}).Where("clerk_created_at < ?", before), fn)
}

// eachLiveID pages through the live ids of q's table, so millions of rows
// never sit in memory at once.
func eachLiveID(ctx context.Context, q *gorm.DB, fn func(id string) error) error {
	const page = 5000
	after := ""
	for {
		var ids []string
		err := q.Session(&gorm.Session{}).WithContext(ctx).Where("deleted_at IS NULL AND id > ?", after).
			Order("id").Limit(page).Pluck("id", &ids).Error
		if err != nil {
			return fmt.Errorf("list live ids: %w", err)
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < page {
			return nil
		}
		after = ids[len(ids)-1]
	}
}

// TombstoneMemberships makes the live memberships with these ids
// tombstones (a backfill's prune), one transaction per chunk of
// orgWriteChunk ids (so any number stays within the databases' parameter
// limits), and reports how many it changed.
func TombstoneMemberships(ctx context.Context, db *gorm.DB, ids []string, src Source) (int, error) {
	total := 0
	for start := 0; start < len(ids); start += orgWriteChunk {
		n, err := tombstoneMemberships(ctx, db, ids[start:min(start+orgWriteChunk, len(ids))], src)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func tombstoneMemberships(ctx context.Context, db *gorm.DB, ids []string, src Source) (int, error) {
	return inTx(ctx, db, func(tx *gorm.DB, _ bool) (int, error) {
		var rows []Membership
		if err := tx.Select("id", "organization_id", "user_id").Where("id IN ?", ids).Find(&rows).Error; err != nil {
			return 0, fmt.Errorf("read %d memberships: %w", len(ids), err)
		}
		changes := make([]OrgChange, len(rows))
		for i, r := range rows {
			changes[i] = OrgChange{Kind: DeleteMembership, Membership: MembershipSnapshot{
				ID: r.ID, OrganizationID: r.OrganizationID, UserID: r.UserID}}
		}
		out, err := applyOrgChanges(tx, changes, src, now())
		n := 0
		for _, o := range out {
			if o == Deleted {
				n++
			}
		}
		return n, err
	})
}
