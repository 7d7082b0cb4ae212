package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// maxSyncBody is the largest body /api/user/sync reads; the seed's body is
// a few hundred bytes.
const maxSyncBody = 16 << 10

// syncUser is the login-time fallback: it verifies the session, then makes
// the caller's row match Clerk, trusting nothing the browser says about the
// user beyond which user it is.
func (s *server) syncUser(c echo.Context) error {
	outcome, profile, err := s.sync(c)
	label := outcome
	switch {
	case err != nil && hungUp(c, err):
		label = "client_gone" // not a Clerk failure, whatever was cut short
	case errors.Is(err, clerkapi.ErrThrottled):
		label = "clerk_throttled" // refused before calling Clerk
		setRetryAfter(c, clerkapi.RetryAfter(err))
	case errors.Is(err, clerkapi.ErrKeysUnavailable):
		label = "clerk_held_off" // answered without calling Clerk
	case err != nil:
		label = syncFailureLabel(err)
	}
	s.Metrics.LoginSyncs.WithLabelValues(label).Inc()
	if err != nil {
		return err
	}
	c.Set(logOutcome, outcome)
	return c.JSON(http.StatusOK, syncJSON{Outcome: outcome, Success: true, User: userResponse(profile)})
}

func (s *server) sync(c echo.Context) (string, models.Profile, error) {
	if err := s.checkCookieOrigin(c.Request()); err != nil {
		return "", models.Profile{}, err
	}
	if s.Sessions == nil || s.Clerk == nil {
		return "", models.Profile{}, fail(http.StatusServiceUnavailable, "login-time sync is not configured (CLERK_SECRET_KEY)", nil)
	}
	userID, err := s.authenticate(c)
	if err != nil {
		return "", models.Profile{}, err
	}
	if err := s.limitUser(c, userID); err != nil {
		return "", models.Profile{}, err
	}
	if err := s.checkBodyUserID(c, userID); err != nil {
		return "", models.Profile{}, err
	}
	return s.syncFromClerk(c.Request().Context(), userID)
}

// syncFailureLabel names a failed sync for the metrics by its status.
func syncFailureLabel(err error) string {
	status, _ := statusOf(err)
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusGone:
		return "gone"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadGateway:
		return "clerk_unavailable"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "bad_request"
}

// authenticate verifies the session token and returns its subject.
func (s *server) authenticate(c echo.Context) (string, error) {
	claims, err := s.Sessions.Verify(c.Request().Context(), sessionToken(c.Request()))
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "", err // the caller hung up or ran out of time waiting for the JWKS
	case errors.Is(err, clerkapi.ErrThrottled):
		return "", clerkFailed(err)
	case errors.Is(err, clerkapi.ErrKeysUnavailable):
		// Held off without calling Clerk: the failed fetch itself was
		// logged as an error; logging each of these too would let anyone
		// with a made-up kid set off the alert.
		return "", &apiError{status: http.StatusBadGateway, message: "could not fetch Clerk's signing keys", cause: err, quiet: true}
	case errors.Is(err, clerkapi.ErrUnavailable):
		return "", fail(http.StatusBadGateway, "could not fetch Clerk's signing keys", err)
	case err != nil:
		s.Log.Info("session rejected", "request_id", requestID(c), "reason", clip(err.Error()))
		return "", fail(http.StatusUnauthorized, "invalid or missing session token", nil)
	}
	c.Set(logUserID, claims.Subject)
	return claims.Subject, nil
}

// checkCookieOrigin refuses a request authenticated by the __session cookie
// whose Origin is neither an allowed origin nor this service itself: a
// browser attaches the cookie to a cross-site "simple" POST (text/plain, no
// custom headers) without any preflight, so CORS alone does not stop it.
// Requests without Origin (not from a browser) and bearer tokens, which a
// foreign page cannot read, are not affected.
func (s *server) checkCookieOrigin(r *http.Request) error {
	if _, bearer := bearerToken(r); bearer {
		return nil
	}
	if _, err := r.Cookie("__session"); err != nil {
		return nil
	}
	origin := r.Header.Get(echo.HeaderOrigin)
	if origin == "" || slices.Contains(s.CORSAllowedOrigins, origin) || sameOrigin(origin, r.Host) {
		return nil
	}
	return fail(http.StatusForbidden, "Forbidden: origin not allowed", nil)
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && host != "" && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, host)
}

// bearerToken reads "Authorization: Bearer <token>".
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// sessionToken is the bearer token, or else the __session cookie.
func sessionToken(r *http.Request) string {
	if token, ok := bearerToken(r); ok {
		return token
	}
	if c, err := r.Cookie("__session"); err == nil {
		return c.Value
	}
	return ""
}

// limitUser answers 429 when the user has called too often.
func (s *server) limitUser(c echo.Context, userID string) error {
	if ok, _ := s.syncLimiter.Allow(userID); ok {
		return nil
	}
	setRetryAfter(c, time.Duration(float64(time.Second)/float64(s.SyncRate)))
	return fail(http.StatusTooManyRequests, "too many sync requests for this user, retry later", nil)
}

// setRetryAfter tells the client to wait d, in whole seconds, at least 1.
func setRetryAfter(c echo.Context, d time.Duration) {
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

// checkBodyUserID reads the optional body; of the seed's fields only userId
// is looked at, and only to reject a caller naming another user.
func (s *server) checkBodyUserID(c echo.Context, userID string) error {
	body, release, err := s.readBody(c, maxSyncBody)
	defer release()
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	var req struct {
		UserID *string `json:"userId"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(http.StatusBadRequest, "request body is not a JSON object", nil)
	}
	if req.UserID != nil && *req.UserID != userID {
		return fail(http.StatusForbidden, "Forbidden: User ID mismatch", nil)
	}
	return nil
}

// syncFromClerk answers from the table while the row is fresh; otherwise it
// fetches the user and their memberships from Clerk, applies them through
// the one write path, and reads the profile again.
func (s *server) syncFromClerk(ctx context.Context, userID string) (string, models.Profile, error) {
	ctx = clerkapi.WithMaxBudgetWait(ctx, loginBudgetWait)
	profile, err := s.findProfile(ctx, userID)
	switch {
	case errors.Is(err, models.ErrNotFound):
	case err != nil:
		return "", profile, err
	case profile.Deleted():
		return "", profile, errGone
	case s.fresh(profile.User):
		return "fresh", profile, nil
	}
	snap, err := s.Clerk.GetUser(ctx, userID)
	switch {
	case errors.Is(err, clerkapi.ErrUserNotFound):
		return "", profile, errGone
	case err != nil:
		return "", profile, clerkFailed(err)
	}
	outcome, err := s.applyLogin(ctx, snap)
	if err != nil {
		return "", profile, err
	}
	if !outcome.Wrote() {
		s.confirmed.note(userID, time.Now())
	}
	profile, err = s.findProfile(ctx, userID)
	return loginOutcome(outcome), profile, err
}

var errGone = fail(http.StatusGone, "user was deleted in Clerk", nil)

// loginBudgetWait bounds how long each Clerk call of a login sync waits for
// the process's Backend API budget: well under RequestTimeout, so that
// while reconcile or a 429 pause holds the budget, logins are answered 503
// at once instead of piling up.
const loginBudgetWait = 2 * time.Second

// clerkFailed is the answer to a failed Backend API call: 503 when this
// process's budget for Clerk ran out (Clerk was not called; syncUser adds
// Retry-After), else 502.
func clerkFailed(err error) error {
	if errors.Is(err, clerkapi.ErrThrottled) {
		return &apiError{status: http.StatusServiceUnavailable, message: "Clerk request budget exhausted, retry later", cause: err, quiet: true}
	}
	return fail(http.StatusBadGateway, "Clerk Backend API unavailable, retry later", err)
}

func (s *server) findProfile(ctx context.Context, id string) (models.Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, DBTimeout)
	defer cancel()
	p, err := s.profiles.find(ctx, id)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return p, dbUnavailable(err)
	}
	return p, err
}

// loginOutcome names an upsert outcome for the client: a snapshot that is
// not newer than the row (equal, or older than a webhook that just landed)
// left the row as it was.
func loginOutcome(o models.Outcome) string {
	if o == models.Stale {
		return string(models.Unchanged)
	}
	return string(o)
}

// fresh reports whether the row was confirmed against Clerk within the
// freshness window: by an applied snapshot (synced_at) or by a fetch that
// found it unchanged (remembered in memory, so confirming costs no write).
func (s *server) fresh(u models.User) bool {
	if s.SyncFreshness <= 0 {
		return false
	}
	last := s.confirmed.at(u.ID)
	if u.SyncedAt != nil && u.SyncedAt.After(last) {
		last = *u.SyncedAt
	}
	return time.Since(last) < s.SyncFreshness
}

// syncJSON is the sync response (fields in the order a map would encode them).
type syncJSON struct {
	Outcome string   `json:"outcome"`
	Success bool     `json:"success"`
	User    userJSON `json:"user"`
}

// userJSON is the user object of the sync response.
type userJSON struct {
	ID          string    `json:"id"`
	Email       *string   `json:"email"`
	FirstName   *string   `json:"firstName"`
	LastName    *string   `json:"lastName"`
	ImageURL    *string   `json:"imageUrl"`
	Username    *string   `json:"username"`
	PhoneNumber *string   `json:"phoneNumber"`
	Tier        string    `json:"tier"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// Organizations are the live organizations the user is a live member of.
	Organizations []models.UserOrganization `json:"organizations"`
}

func userResponse(p models.Profile) userJSON {
	u := p.User
	return userJSON{
		ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, ImageURL: u.ImageURL,
		Username: u.Username, PhoneNumber: u.PhoneNumber, Tier: u.Tier,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(), Organizations: p.Organizations,
	}
}
