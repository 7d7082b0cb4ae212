package clerkapi_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
)

// recorder keeps the operation name of every request sent through it.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.ops = append(r.ops, clerkapi.Operation(req))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// Every call names its operation with the label the dashboards and alert
// rules match (usersync_clerk_api_requests_total{operation=…}).
func TestEveryCallNamesItsOperation(t *testing.T) {
	fake := clerktest.New(t)
	fake.PutUser(clerktest.User("user_1", 1, "a@example.com", nil))
	fake.PutOrganization(clerktest.Organization("org_1", 1, nil))
	rec := &recorder{}
	client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, &http.Client{Transport: rec})
	ctx := context.Background()
	for _, c := range []struct {
		want string
		call func() error
	}{
		{"get_user", func() error { _, err := client.GetUser(ctx, "user_1"); return err }},
		{"list_users", func() error { _, err := client.ListUsers(ctx, 0, 10); return err }},
		{"list_users", func() error { _, err := client.ListRecentUsers(ctx, 0, 10); return err }},
		{"count_users", func() error { _, err := client.CountUsers(ctx); return err }},
		{"get_jwks", func() error { _, err := client.JWKS(ctx); return err }},
		{"list_organizations", func() error { _, err := client.ListOrganizations(ctx, 0, 10); return err }},
		{"get_organization", func() error { return client.GetOrganization(ctx, "org_1") }},
		{"list_memberships", func() error { _, err := client.ListMemberships(ctx, 0, 10); return err }},
		{"list_user_memberships", func() error { _, err := client.ListUserMemberships(ctx, "user_1"); return err }},
	} {
		rec.ops = nil
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		if len(rec.ops) != 1 || rec.ops[0] != c.want {
			t.Errorf("operations %q, want [%s]", rec.ops, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, fake.URL+"/v1/users", nil)
	if op := clerkapi.Operation(req); op != "" {
		t.Errorf("a request no client made is named %q", op)
	}
}

// A key Clerk refuses is told apart from Clerk being down: a
// KeyRefusedError with the status, an ErrRejected, never retried.
func TestRefusedKeyIsNamed(t *testing.T) {
	fake := clerktest.New(t)
	client := clerkapi.NewClient(fake.URL, "sk_test_not_this_instance", nil)
	_, err := client.GetUser(context.Background(), "user_1")
	var refused *clerkapi.KeyRefusedError
	if !errors.As(err, &refused) || refused.Status != 401 || !errors.Is(err, clerkapi.ErrRejected) || clerkapi.Retryable(err) {
		t.Fatalf("GetUser with a refused key: %v, want a KeyRefusedError (401), an ErrRejected, not retryable", err)
	}
}
