package clerkapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/organization"
	"github.com/clerk/clerk-sdk-go/v2/organizationmembership"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/usersync/usersync/models"
)

// ErrOrganizationNotFound means Clerk answered 404 for the organization.
var ErrOrganizationNotFound = errors.New("organization not found in Clerk")

// rawList is Clerk's list envelope, {data, total_count}, with each item
// kept as Clerk's bytes.
type rawList struct {
	clerk.APIResource
	Data       []json.RawMessage `json:"data"`
	TotalCount int               `json:"total_count"`
}

// ListOrganizations fetches one page of organizations, oldest first.
func (c *Client) ListOrganizations(ctx context.Context, offset, limit int) (Page[models.OrgSnapshot], error) {
	params := &organization.ListParams{OrderBy: clerk.String("+created_at")}
	params.Limit, params.Offset = clerk.Int64(int64(limit)), clerk.Int64(int64(offset))
	list, err := c.list(ctx, "/organizations", params, opListOrganizations, nil)
	if err != nil {
		return Page[models.OrgSnapshot]{}, err
	}
	return pageOf(list.Data, list.TotalCount, OrgSnapshotFromJSON), nil
}

// ListMemberships fetches one page of the instance-wide
// GET /v1/organization_memberships, oldest first (clerk-sdk-go only wraps
// the per-organization listing, so it is called directly).
func (c *Client) ListMemberships(ctx context.Context, offset, limit int) (Page[models.MembershipSnapshot], error) {
	params := &organizationmembership.ListParams{OrderBy: clerk.String("+created_at")}
	params.Limit, params.Offset = clerk.Int64(int64(limit)), clerk.Int64(int64(offset))
	list, err := c.list(ctx, "/organization_memberships", params, opListMemberships, nil)
	if err != nil {
		return Page[models.MembershipSnapshot]{}, err
	}
	return pageOf(list.Data, list.TotalCount, MembershipSnapshotFromJSON), nil
}

// ListUserMemberships fetches every page of
// GET /v1/users/{id}/organization_memberships.
func (c *Client) ListUserMemberships(ctx context.Context, userID string) ([]models.MembershipSnapshot, error) {
	var out []models.MembershipSnapshot
	for offset := 0; ; {
		params := &user.ListOrganizationMembershipsParams{}
		params.Limit, params.Offset = clerk.Int64(MaxPageSize), clerk.Int64(int64(offset))
		list, err := c.list(ctx, "/users/"+url.PathEscape(userID)+"/organization_memberships", params, opListUserMemberships, ErrUserNotFound)
		if err != nil {
			return nil, err
		}
		page := pageOf(list.Data, list.TotalCount, MembershipSnapshotFromJSON)
		if len(page.Invalid) > 0 {
			return nil, fmt.Errorf("%s: %w", opListUserMemberships, page.Invalid[0])
		}
		out = append(out, page.Snapshots...)
		offset += page.Size
		if page.Size < MaxPageSize || offset >= page.Total {
			return out, nil
		}
	}
}

// GetOrganization asks GET /v1/organizations/{id}; ErrOrganizationNotFound
// means Clerk deleted it.
func (c *Client) GetOrganization(ctx context.Context, id string) error {
	req := clerk.NewAPIRequest(http.MethodGet, "/organizations/"+url.PathEscape(id))
	var raw rawObject
	return c.do(ctx, opGetOrganization, ErrOrganizationNotFound, func(ctx context.Context) error { return c.backend.Call(ctx, req, &raw) })
}

type rawObject struct {
	clerk.APIResource
}

func (c *Client) list(ctx context.Context, path string, params clerk.Params, op operation, notFound error) (*rawList, error) {
	req := clerk.NewAPIRequest(http.MethodGet, path)
	req.SetParams(params)
	list := &rawList{}
	if err := c.do(ctx, op, notFound, func(ctx context.Context) error { return c.backend.Call(ctx, req, list) }); err != nil {
		return nil, err
	}
	return list, nil
}

// ClockMargin is how far Clerk's clock and ours may disagree.
const ClockMargin = time.Minute

// ListedBefore is the clerk_created_at (ms) before which a membership
// missing from a complete listing that began at started is known to be
// gone: one created after the listing began (by Clerk's clock, which may
// be off by ClockMargin) may be missing only because it is new.
func ListedBefore(started time.Time) int64 { return started.Add(-ClockMargin).UnixMilli() }
