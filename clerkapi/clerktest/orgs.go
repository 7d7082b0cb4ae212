package clerktest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/clerk/clerk-sdk-go/v2"
)

// PutOrganization stores a Clerk organization object (as Organization
// builds it, or any JSON object with an id).
func (f *Fake) PutOrganization(o map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	put(f.orgs, &f.orgOrder, o["id"].(string), o)
}

// DeleteOrganization removes an organization and its memberships, as
// deleting it in Clerk does.
func (f *Fake) DeleteOrganization(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.orgs, id)
	for mid, m := range f.mems {
		if m["organization_id"] == id {
			delete(f.mems, mid)
		}
	}
}

// PutMembership stores a membership built by Membership; listings answer
// it with its organization's current object embedded, as Clerk does.
func (f *Fake) PutMembership(m map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	put(f.mems, &f.memOrder, m["id"].(string), m)
}

// DeleteMembership removes a membership.
func (f *Fake) DeleteMembership(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mems, id)
}

// Organization builds a Clerk organization object like Clerk's documented
// example; fields override or add to it.
func Organization(id string, updatedAt int64, fields map[string]any) map[string]any {
	empty := json.RawMessage(`{}`)
	return objectMap(&clerk.Organization{
		Object: "organization", ID: id, Name: "Org " + id, Slug: strings.ToLower(id),
		ImageURL: clerk.String("https://img.clerk.com/" + id), HasImage: true, MembersCount: clerk.Int64(1),
		MissingMemberWithElevatedPermissions: clerk.Bool(false), PendingInvitationsCount: clerk.Int64(0),
		MaxAllowedMemberships: 5, AdminDeleteEnabled: true, PublicMetadata: empty, PrivateMetadata: empty,
		CreatedBy: "user_creator", CreatedAt: updatedAt, UpdatedAt: updatedAt,
	}, fields)
}

// Membership builds a Clerk organization membership of userID in orgID,
// without its organization (listings embed the organization's current
// object); fields override or add to it.
func Membership(id, orgID, userID string, createdAt int64, role string, fields map[string]any) map[string]any {
	empty := json.RawMessage(`{}`)
	m := objectMap(&clerk.OrganizationMembership{
		Object: "organization_membership", ID: id, Role: role, RoleName: role,
		Permissions: []string{}, PublicMetadata: empty, PrivateMetadata: empty,
		PublicUserData: &clerk.OrganizationMembershipPublicUserData{
			UserID: userID, FirstName: clerk.String("Ada"), LastName: clerk.String("Lovelace"),
			ImageURL: clerk.String("https://img.clerk.com/" + userID), HasImage: true, Identifier: userID + "@example.com",
		},
		CreatedAt: createdAt, UpdatedAt: createdAt,
	}, nil)
	delete(m, "organization")
	m["organization_id"] = orgID // the fake's own: which organization to embed
	for k, v := range fields {
		m[k] = v
	}
	return m
}

func (f *Fake) serveOrgs(w http.ResponseWriter, r *http.Request, op, path string) {
	if op == OpGetOrganization {
		f.mu.Lock()
		o, ok := f.orgs[strings.TrimPrefix(path, "/organizations/")]
		f.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "resource_not_found", "not found")
			return
		}
		writeJSON(w, http.StatusOK, o)
		return
	}
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	var items []any
	switch op {
	case OpListOrganizations:
		for _, id := range f.orgOrder {
			if o, ok := f.orgs[id]; ok && !f.hidden[id] {
				items = append(items, o)
			}
		}
	case OpListMemberships, OpListUserMemberships:
		user := strings.TrimSuffix(strings.TrimPrefix(path, "/users/"), "/organization_memberships")
		for _, id := range f.memOrder {
			m, ok := f.mems[id]
			if !ok || (op == OpListUserMemberships && m["public_user_data"].(map[string]any)["user_id"] != user) {
				continue
			}
			items = append(items, f.withOrganization(m))
		}
	}
	f.mu.Unlock()
	total := len(items)
	data := []any{}
	if offset < total {
		data = items[offset:min(offset+limit, total)]
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "total_count": total})
}

// withOrganization is the membership as Clerk answers it: the
// organization embedded, no organization_id of its own.
func (f *Fake) withOrganization(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "organization_id" {
			out[k] = v
		}
	}
	orgID, _ := m["organization_id"].(string)
	if o, ok := f.orgs[orgID]; ok {
		out["organization"] = o
	} else {
		out["organization"] = Organization(orgID, 1, nil)
	}
	return out
}

// paging reads limit (default 10, 1 to 500) and offset as Clerk does.
func paging(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit = 10
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil {
		limit = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("offset")); err == nil {
		offset = v
	}
	if limit < 1 || limit > 500 {
		writeError(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "limit must be between 1 and 500")
		return 0, 0, false
	}
	return limit, max(0, offset), true
}
