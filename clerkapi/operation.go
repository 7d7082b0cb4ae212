package clerkapi

import (
	"context"
	"net/http"
	"strings"
)

// operation names one kind of Backend API call. The names are the
// operation label of usersync_clerk_api_requests_total, which dashboards
// and alert rules match: clerkapi names its calls so that metrics need not
// know Clerk's paths.
type operation string

// The Backend API calls the client makes.
const (
	opGetUser             operation = "get_user"
	opListUsers           operation = "list_users"
	opCountUsers          operation = "count_users"
	opGetJWKS             operation = "get_jwks"
	opListOrganizations   operation = "list_organizations"
	opGetOrganization     operation = "get_organization"
	opListMemberships     operation = "list_memberships"
	opListUserMemberships operation = "list_user_memberships"
)

// String is the operation in words, as errors start.
func (o operation) String() string { return strings.ReplaceAll(string(o), "_", " ") }

type operationKey struct{}

func withOperation(ctx context.Context, op operation) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}

// Operation names the Backend API call a request of a Client makes
// ("get_user", "list_users", …), for a metrics label; "" for a request no
// Client made. It never holds an id from the path.
func Operation(r *http.Request) string {
	op, _ := r.Context().Value(operationKey{}).(operation)
	return string(op)
}
