package clerkapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"github.com/clerk/clerk-sdk-go/v2/user"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/usersync/usersync/models"
)

// Errors of the Backend API calls.
var (
	// ErrUserNotFound means Clerk answered 404 for the user.
	ErrUserNotFound = errors.New("user not found in Clerk")
	// ErrUnavailable means Clerk could not be reached or answered an error.
	ErrUnavailable = errors.New("the Clerk Backend API is unavailable")
	// ErrRateLimited means Clerk answered 429; it wraps ErrUnavailable.
	ErrRateLimited = fmt.Errorf("%w: rate limited", ErrUnavailable)
	// ErrRejected means Clerk refused the request itself (a 4xx such as an
	// invalid secret key): asking again will not help. It wraps ErrUnavailable.
	ErrRejected = fmt.Errorf("%w: request rejected", ErrUnavailable)
)

// Retryable reports whether asking again may succeed: a 429, a 5xx, no
// answer at all, or no budget left in time (ErrThrottled).
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrRejected)
}

// CallTimeout bounds one Backend API call.
const CallTimeout = 5 * time.Second

// Client calls the Clerk Backend API at CLERK_API_URL through clerk-sdk-go.
type Client struct {
	backend clerk.Backend
	users   *user.Client
	jwks    *jwks.Client
	budget  *Budget // nil: unlimited
}

// Option configures a Client.
type Option func(*Client)

// WithBudget makes every call of the client spend from b, the budget of
// the whole process (one per process, shared by every client in it).
func WithBudget(b *Budget) Option { return func(c *Client) { c.budget = b } }

// NewClient returns a client for apiURL (without /v1) authenticated with
// secretKey. httpClient may be nil for one with CallTimeout. Without
// WithBudget the client's calls are not rate limited.
func NewClient(apiURL, secretKey string, httpClient *http.Client, opts ...Option) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: CallTimeout}
	}
	cfg := &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{
		HTTPClient: httpClient,
		URL:        clerk.String(apiURL + "/v1"),
		Key:        clerk.String(secretKey),
	}}
	backend := clerk.NewBackend(&cfg.BackendConfig)
	c := &Client{backend: backend, users: &user.Client{Backend: backend}, jwks: &jwks.Client{Backend: backend}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do makes one Backend API request, send, once the budget allows it (the
// wait comes before send, so it is not part of the HTTP client's timeout),
// and classifies its error. A 429 pauses the budget for every caller. send
// must make its request with the ctx it is given, which names op.
func (c *Client) do(ctx context.Context, op operation, notFound error, send func(context.Context) error) error {
	if err := c.budget.wait(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err := send(withOperation(ctx, op))
	if err == nil {
		return nil
	}
	err = classify(err, op.String(), notFound)
	if errors.Is(err, ErrRateLimited) {
		c.budget.pause(RetryAfter(err))
	}
	return err
}

// GetUser fetches GET /v1/users/{id} and maps it to a snapshot, keeping the
// response bytes as its raw JSON.
func (c *Client) GetUser(ctx context.Context, id string) (models.Snapshot, error) {
	var u *clerk.User
	err := c.do(ctx, opGetUser, ErrUserNotFound, func(ctx context.Context) (err error) {
		u, err = c.users.Get(ctx, id)
		return err
	})
	if err != nil {
		return models.Snapshot{}, err
	}
	if u.Response == nil {
		return models.Snapshot{}, fmt.Errorf("get user: %w: empty response", ErrUnavailable)
	}
	return SnapshotFromJSON(u.Response.RawJSON)
}

// JWKS fetches the instance's JSON Web Key Set.
func (c *Client) JWKS(ctx context.Context) (*clerk.JSONWebKeySet, error) {
	var set *clerk.JSONWebKeySet
	err := c.do(ctx, opGetJWKS, nil, func(ctx context.Context) (err error) {
		set, err = c.jwks.Get(ctx, &jwks.GetParams{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// MaxPageSize is the largest page GET /v1/users serves.
const MaxPageSize = 500

// Page is one page of a listing (users, organizations, memberships): each
// object's snapshot, or the reason it could not be mapped.
type Page[T any] struct {
	Snapshots []T
	Invalid   []error // objects that could not be mapped (counted as errors)
	Size      int     // objects in the page, mapped or not
	Total     int     // Clerk's total_count; 0 for GET /v1/users, which answers a bare array
}

// pageOf maps each object of a listing with mapOne.
func pageOf[T any, R ~[]byte](raws []R, total int, mapOne func([]byte) (T, error)) Page[T] {
	page := Page[T]{Size: len(raws), Total: total, Snapshots: make([]T, 0, len(raws))}
	for _, raw := range raws {
		s, err := mapOne(raw)
		if err != nil {
			page.Invalid = append(page.Invalid, err)
			continue
		}
		page.Snapshots = append(page.Snapshots, s)
	}
	return page
}

// rawUsers keeps each user of a list response as Clerk's bytes (split
// with encoding/json/v2; the SDK has already checked the page with v1).
type rawUsers struct {
	clerk.APIResource
	users []jsontext.Value
}

func (r *rawUsers) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &r.users) }

// ListUsers fetches one page of users in creation order (oldest first, so a
// user created during the listing lands on a later page instead of
// shifting the pages already read). It makes one request: the SDK's
// user.List also asks for the total count every page.
func (c *Client) ListUsers(ctx context.Context, offset, limit int) (Page[models.Snapshot], error) {
	return c.listUsers(ctx, "+created_at", offset, limit)
}

// ListRecentUsers fetches one page of users, most recently updated first:
// what an incremental reconcile pass reads until it reaches users it has
// already seen.
func (c *Client) ListRecentUsers(ctx context.Context, offset, limit int) (Page[models.Snapshot], error) {
	return c.listUsers(ctx, "-updated_at", offset, limit)
}

func (c *Client) listUsers(ctx context.Context, orderBy string, offset, limit int) (Page[models.Snapshot], error) {
	params := &user.ListParams{OrderBy: clerk.String(orderBy)}
	params.Limit, params.Offset = clerk.Int64(int64(limit)), clerk.Int64(int64(offset))
	req := clerk.NewAPIRequest(http.MethodGet, "/users")
	req.SetParams(params)
	var raw rawUsers
	if err := c.do(ctx, opListUsers, nil, func(ctx context.Context) error { return c.backend.Call(ctx, req, &raw) }); err != nil {
		return Page[models.Snapshot]{}, err
	}
	return pageOf(raw.users, 0, SnapshotFromJSON), nil
}

// CountUsers asks GET /v1/users/count once, for progress reporting.
func (c *Client) CountUsers(ctx context.Context) (int, error) {
	var n *user.TotalCount
	err := c.do(ctx, opCountUsers, nil, func(ctx context.Context) (err error) {
		n, err = c.users.Count(ctx, &user.ListParams{})
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(n.TotalCount), nil
}

// RetryAfter is how long Clerk asked to wait (its 429 Retry-After), or 0.
func RetryAfter(err error) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.wait
	}
	return 0
}

type retryAfterError struct {
	err  error
	wait time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// KeyRefusedError is Clerk answering 401 or 403: it refused the secret
// key, which only another key mends. It is an ErrRejected.
type KeyRefusedError struct {
	Op     string
	Status int
}

func (e *KeyRefusedError) Error() string {
	return fmt.Sprintf("%s: %v: Clerk refused the secret key (status %d)", e.Op, ErrRejected, e.Status)
}

func (e *KeyRefusedError) Unwrap() error { return ErrRejected }

// classify turns an SDK error into the package's errors. A 404 means
// notFound, the caller's "that object does not exist", when the path names
// one (a user, an organization); elsewhere (the JWKS, a listing of
// everything) it is a refusal like any other 4xx: the URL is wrong, and
// asking again will not help.
func classify(err error, op string, notFound error) error {
	var apiErr *clerk.APIErrorResponse
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.HTTPStatusCode == http.StatusNotFound && notFound != nil:
			return fmt.Errorf("%s: %w", op, notFound)
		case apiErr.HTTPStatusCode == http.StatusTooManyRequests:
			wrapped := fmt.Errorf("%s: %w", op, ErrRateLimited)
			return &retryAfterError{err: wrapped, wait: retryAfter(apiErr.Response)}
		}
		if apiErr.HTTPStatusCode == http.StatusUnauthorized || apiErr.HTTPStatusCode == http.StatusForbidden {
			return &KeyRefusedError{Op: op, Status: apiErr.HTTPStatusCode}
		}
		if apiErr.HTTPStatusCode < 500 {
			return fmt.Errorf("%s: %w: status %d", op, ErrRejected, apiErr.HTTPStatusCode)
		}
		return fmt.Errorf("%s: %w: status %d", op, ErrUnavailable, apiErr.HTTPStatusCode)
	}
	return fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
}

// retryAfter reads Retry-After: whole seconds, or an HTTP date.
func retryAfter(resp *clerk.APIResponse) time.Duration {
	if resp == nil {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(at))
	}
	return 0
}
