package clerkapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/user"
)

// ErrNotClerkAnswer means something answered that is not the Backend API:
// its body is not Clerk's JSON (CLERK_API_URL points elsewhere).
var ErrNotClerkAnswer = errors.New("the answer is not the Clerk Backend API's")

// KeyAnswer is Clerk's answer to ProbeKey.
type KeyAnswer struct {
	Status int       // the HTTP status
	Date   time.Time // the answer's Date header; zero without one
}

// ProbeKey asks GET /v1/users?limit=1 once, the cheapest call the secret
// key must be allowed, and returns Clerk's answer whatever its status:
// `usersync check` tells a refused key from a failing Clerk by it, and
// compares clocks with its Date. The error is for no answer at all (the
// HTTP client's, a *url.Error) or ErrNotClerkAnswer.
func (c *Client) ProbeKey(ctx context.Context) (KeyAnswer, error) {
	if err := c.budget.wait(ctx); err != nil {
		return KeyAnswer{}, fmt.Errorf("%s: %w", opListUsers, err)
	}
	params := &user.ListParams{}
	params.Limit = clerk.Int64(1)
	req := clerk.NewAPIRequest(http.MethodGet, "/users")
	req.SetParams(params)
	var raw rawUsers
	err := c.backend.Call(withOperation(ctx, opListUsers), req, &raw)
	var apiErr *clerk.APIErrorResponse
	var urlErr *url.Error
	switch {
	case err == nil:
		return answerOf(raw.Response), nil
	case errors.As(err, &apiErr):
		return answerOf(apiErr.Response), nil
	case errors.As(err, &urlErr):
		return KeyAnswer{}, err
	}
	return KeyAnswer{}, ErrNotClerkAnswer // the SDK's error is the body itself: not worth repeating
}

func answerOf(resp *clerk.APIResponse) KeyAnswer {
	if resp == nil {
		return KeyAnswer{}
	}
	a := KeyAnswer{Status: resp.StatusCode}
	if date, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		a.Date = date
	}
	return a
}
