package clerkapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/usersync/usersync/models"
)

// Errors of the Backend API calls.
var (
	// ErrUserNotFound means Clerk answered 404 for the user.
	ErrUserNotFound = errors.New("user not found in Clerk")
	// ErrUnavailable means Clerk could not be reached or answered an error.
	ErrUnavailable = errors.New("Clerk Backend API unavailable")
)

// CallTimeout bounds one Backend API call.
const CallTimeout = 5 * time.Second

// Client calls the Clerk Backend API at CLERK_API_URL through clerk-sdk-go.
type Client struct {
	users *user.Client
	jwks  *jwks.Client
}

// NewClient returns a client for apiURL (without /v1) authenticated with
// secretKey. httpClient may be nil for one with CallTimeout.
func NewClient(apiURL, secretKey string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: CallTimeout}
	}
	cfg := &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		HTTPClient: httpClient,
		URL:        clerk.String(apiURL + "/v1"),
		Key:        clerk.String(secretKey),
	}}
	return &Client{users: user.NewClient(cfg), jwks: jwks.NewClient(cfg)}
}

// GetUser fetches GET /v1/users/{id} and maps it to a snapshot, keeping the
// response bytes as its raw JSON.
func (c *Client) GetUser(ctx context.Context, id string) (models.Snapshot, error) {
	u, err := c.users.Get(ctx, id)
	if err != nil {
		return models.Snapshot{}, classify(err, "get user")
	}
	s := SnapshotFromUser(u)
	if u.Response != nil {
		s.RawJSON = string(u.Response.RawJSON)
	}
	return s, nil
}

// JWKS fetches the instance's JSON Web Key Set.
func (c *Client) JWKS(ctx context.Context) (*clerk.JSONWebKeySet, error) {
	set, err := c.jwks.Get(ctx, &jwks.GetParams{})
	if err != nil {
		return nil, classify(err, "get JWKS")
	}
	return set, nil
}

// classify turns an SDK error into ErrUserNotFound or ErrUnavailable. The
// SDK returns *clerk.APIErrorResponse for Clerk's JSON errors, and a plain
// error for transport failures and non-JSON answers (a proxy's 502 page).
func classify(err error, op string) error {
	var apiErr *clerk.APIErrorResponse
	if errors.As(err, &apiErr) {
		if apiErr.HTTPStatusCode == http.StatusNotFound {
			return fmt.Errorf("%s: %w", op, ErrUserNotFound)
		}
		return fmt.Errorf("%s: %w: status %d", op, ErrUnavailable, apiErr.HTTPStatusCode)
	}
	return fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
}
