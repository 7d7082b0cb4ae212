package clerkapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
)

// ProbeKey reports Clerk's answer whatever its status, and tells no answer
// from one that is not Clerk's.
func TestProbeKey(t *testing.T) {
	fake := clerktest.New(t)
	fake.SetClock(-time.Hour)
	ctx := context.Background()
	answer, err := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil).ProbeKey(ctx)
	if err != nil || answer.Status != http.StatusOK || time.Since(answer.Date) < 59*time.Minute {
		t.Errorf("good key: %+v, %v; want 200 with the fake's Date an hour behind", answer, err)
	}
	if answer, err := clerkapi.NewClient(fake.URL, "sk_test_wrong", nil).ProbeKey(ctx); err != nil || answer.Status != http.StatusUnauthorized {
		t.Errorf("wrong key: %+v, %v; want 401", answer, err)
	}
	fake.FailNext(clerktest.OpListUsers, clerktest.Failure{Status: http.StatusInternalServerError})
	if answer, err := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil).ProbeKey(ctx); err != nil || answer.Status != http.StatusInternalServerError {
		t.Errorf("failing Clerk: %+v, %v; want 500", answer, err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>not Clerk</html>", http.StatusBadGateway)
	}))
	defer other.Close()
	if _, err := clerkapi.NewClient(other.URL, clerktest.SecretKey, nil).ProbeKey(ctx); !errors.Is(err, clerkapi.ErrNotClerkAnswer) {
		t.Errorf("not Clerk: %v, want ErrNotClerkAnswer", err)
	}
	var urlErr *url.Error
	if _, err := clerkapi.NewClient("http://127.0.0.1:1", clerktest.SecretKey, nil).ProbeKey(ctx); !errors.As(err, &urlErr) {
		t.Errorf("unreachable: %v, want the HTTP client's *url.Error", err)
	}
}
