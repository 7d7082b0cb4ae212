package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// /readyz follows the service role's grants, not only the connection: a
// revoked INSERT on users turns it 503 (a webhook would fail), and granting
// it back turns it 200 again.
func TestReadyzFollowsGrants(t *testing.T) {
	owner := modelstest.New(t, models.Postgres)
	var dbName string
	owner.Raw("SELECT current_database()").Scan(&dbName)
	role := "usersync_ready_" + strings.ToLower(dbName[len(dbName)-8:])
	for _, s := range []string{
		"CREATE ROLE " + role + " LOGIN",
		models.RuntimeGrants(role),
	} {
		if err := owner.Exec(s).Error; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { owner.Exec("DROP OWNED BY " + role); owner.Exec("DROP ROLE " + role) })
	u, _ := url.Parse(modelstest.PostgresURL(t))
	u.User, u.Path = url.User(role), "/"+dbName
	db, err := models.Open(context.Background(), models.Postgres, u.String(), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close(db) })
	h := newHandler(t, db, secret1)
	readyz := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec
	}

	wantResponse(t, readyz(), 200, `{"status":"ok"}`)
	owner.Exec("REVOKE INSERT ON users FROM " + role)
	wantResponse(t, readyz(), 503, `{"error":"database unavailable"}`)
	body := userEvent("user.created", "user_1", 1, "a@example.com")
	wantResponse(t, post(h, body, signed(t, secret1, "msg_1", time.Now(), body)), 503, `{"error":"database unavailable, retry later"}`)
	owner.Exec("GRANT INSERT ON users TO " + role)
	wantResponse(t, readyz(), 200, `{"status":"ok"}`)
}
