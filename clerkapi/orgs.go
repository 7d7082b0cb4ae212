package clerkapi

import (
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/usersync/usersync/models"
)

// Errors for organization and membership objects that cannot be mapped.
var (
	ErrInvalidOrganization = errors.New("invalid Clerk organization")
	ErrInvalidMembership   = errors.New("invalid Clerk organization membership")
)

// clerkOrg is the part of Clerk's organization object a snapshot needs.
type clerkOrg struct {
	ID             string         `json:"id"`
	Name           *string        `json:"name"`
	Slug           *string        `json:"slug"`
	ImageURL       *string        `json:"image_url"`
	CreatedBy      *string        `json:"created_by"`
	MembersCount   *int64         `json:"members_count"`
	PublicMetadata jsontext.Value `json:"public_metadata"`
	UpdatedAt      int64          `json:"updated_at"`
}

// clerkMembership is the part of Clerk's organization_membership object a
// snapshot needs; the organization is kept as Clerk's bytes for its own
// raw_json.
type clerkMembership struct {
	ID             string         `json:"id"`
	Role           string         `json:"role"`
	Organization   jsontext.Value `json:"organization"`
	PublicUserData *struct {
		UserID string `json:"user_id"`
	} `json:"public_user_data"`
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
}

// OrgSnapshotFromJSON maps a Clerk organization object (a webhook's data,
// one organization of a listing, or a membership's organization) to a
// snapshot, keeping raw as its raw JSON. Tier follows rule 4.
func OrgSnapshotFromJSON(raw []byte) (models.OrgSnapshot, error) {
	var o clerkOrg
	if err := json.Unmarshal(raw, &o, decodeOptions); err != nil {
		return models.OrgSnapshot{}, fmt.Errorf("%w: %v", ErrInvalidOrganization, err)
	}
	if o.ID == "" {
		return models.OrgSnapshot{}, fmt.Errorf("%w: no id", ErrInvalidOrganization)
	}
	s := models.OrgSnapshot{
		ID: o.ID, Name: nonEmpty(o.Name), Slug: nonEmpty(o.Slug), ImageURL: nonEmpty(o.ImageURL),
		CreatedBy: nonEmpty(o.CreatedBy), MembersCount: o.MembersCount, Tier: tierOf(o.PublicMetadata),
		UpdatedAt: o.UpdatedAt, RawJSON: string(storable(raw)),
	}
	if err := checkOrg(s); err != nil {
		return models.OrgSnapshot{}, fmt.Errorf("%w: %w", ErrInvalidOrganization, err)
	}
	return s, nil
}

// MembershipSnapshotFromJSON maps a Clerk organization membership (with
// its organization and public_user_data.user_id, as webhooks and listings
// carry them) to a snapshot that carries its organization's.
func MembershipSnapshotFromJSON(raw []byte) (models.MembershipSnapshot, error) {
	var m clerkMembership
	if err := json.Unmarshal(raw, &m, decodeOptions); err != nil {
		return models.MembershipSnapshot{}, fmt.Errorf("%w: %v", ErrInvalidMembership, err)
	}
	if m.ID == "" {
		return models.MembershipSnapshot{}, fmt.Errorf("%w: no id", ErrInvalidMembership)
	}
	if m.PublicUserData == nil || m.PublicUserData.UserID == "" {
		return models.MembershipSnapshot{}, fmt.Errorf("%w: no public_user_data.user_id", ErrInvalidMembership)
	}
	org, err := OrgSnapshotFromJSON(m.Organization)
	if err != nil {
		return models.MembershipSnapshot{}, fmt.Errorf("%w: organization: %w", ErrInvalidMembership, err)
	}
	s := models.MembershipSnapshot{
		ID: m.ID, OrganizationID: org.ID, UserID: m.PublicUserData.UserID, Role: m.Role,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, RawJSON: string(storable(raw)), Org: &org,
	}
	if err := checkMembership(s); err != nil {
		return models.MembershipSnapshot{}, fmt.Errorf("%w: %w", ErrInvalidMembership, err)
	}
	return s, nil
}
