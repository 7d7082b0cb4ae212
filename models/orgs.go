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

// UserOrganization is one organization a user is a live member of, as the
// login-time sync answers it.
type UserOrganization struct {
	ID   string  `json:"id"`
	Name *string `json:"name"`
	Slug *string `json:"slug"`
	Role string  `json:"role"`
	Tier string  `json:"tier"`
}

// organizationsOfSQL reads the live organizations many users are live
// members of, each user's in the order the memberships were created.
var organizationsOfSQL = map[Dialect]string{
	Postgres: `SELECT m.user_id, o.id, o.name, o.slug, m.role, o.tier
		FROM organization_memberships AS m JOIN organizations AS o ON o.id = m.organization_id
		WHERE m.user_id = ANY($1::text[]) AND m.deleted_at IS NULL AND o.deleted_at IS NULL
		ORDER BY m.user_id, m.clerk_created_at, m.id`,
	SQLite: `SELECT m.user_id, o.id, o.name, o.slug, m.role, o.tier
		FROM organization_memberships AS m JOIN organizations AS o ON o.id = m.organization_id
		WHERE m.user_id IN (SELECT value FROM json_each(?1)) AND m.deleted_at IS NULL AND o.deleted_at IS NULL
		ORDER BY m.user_id, m.clerk_created_at, m.id`,
}

// FindOrganizationsOf lists, by user id, the live organizations each user
// is a live member of; users with none are absent.
func FindOrganizationsOf(ctx context.Context, db *gorm.DB, userIDs []string) (map[string][]UserOrganization, error) {
	d := DialectOf(db)
	rows, err := db.Statement.ConnPool.QueryContext(ctx, organizationsOfSQL[d], listArg(d, userIDs))
	if err != nil {
		return nil, fmt.Errorf("find organizations of %d users: %w", len(userIDs), err)
	}
	defer rows.Close()
	out := map[string][]UserOrganization{}
	for rows.Next() {
		var userID string
		var o UserOrganization
		if err := rows.Scan(&userID, &o.ID, &o.Name, &o.Slug, &o.Role, &o.Tier); err != nil {
			return nil, fmt.Errorf("find organizations of %d users: %w", len(userIDs), err)
		}
		out[userID] = append(out[userID], o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find organizations of %d users: %w", len(userIDs), err)
	}
	return out, nil
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
// writeChunk ids, and reports how many it changed.
func TombstoneMemberships(ctx context.Context, db *gorm.DB, ids []string, src Source) (int, error) {
	total := 0
	for start := 0; start < len(ids); start += writeChunk {
		chunk := ids[start:min(start+writeChunk, len(ids))]
		changes := make([]Change, len(chunk))
		for i, id := range chunk {
			changes[i] = Change{Kind: DeleteMembership, Membership: MembershipSnapshot{ID: id}}
		}
		out, err := Apply(ctx, db, changes, src)
		if err != nil {
			return total, err
		}
		for _, o := range out {
			if o == Deleted {
				total++
			}
		}
	}
	return total, nil
}
