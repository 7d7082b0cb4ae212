package handlers_test

import (
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// withInstance puts instance_id into a Clerk event body, as Clerk does.
func withInstance(body []byte, instance string) []byte {
	return []byte(strings.Replace(string(body), `{"object":"event",`, `{"object":"event","instance_id":"`+instance+`",`, 1))
}

// The first event that names its instance binds the database to it; a
// signed event of another instance is answered 409, applied to nothing and
// recorded; an event naming none is accepted.
func TestWebhookInstanceBinding(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHandler(t, db, secret1)
		send := func(msgID string, body []byte) (int, string) {
			rec := post(h, body, signed(t, secret1, msgID, time.Now(), body))
			return rec.Code, strings.TrimSpace(rec.Body.String())
		}
		if code, body := send("msg_1", withInstance(userEvent("user.created", "user_1", 100, "a@example.com"), "ins_prod")); code != 200 {
			t.Fatalf("first event: %d %s", code, body)
		}
		if bound, _ := models.BoundInstance(t.Context(), db); bound != "ins_prod" {
			t.Fatalf("bound = %q after the first event, want ins_prod", bound)
		}
		foreign := withInstance(userEvent("user.updated", "user_1", 200, "dev@example.com"), "ins_dev")
		for range 2 { // a redelivery is refused again, not answered duplicate
			code, body := send("msg_2", foreign)
			if want := `{"error":"event from Clerk instance ins_dev; this database mirrors ins_prod"}`; code != 409 || body != want {
				t.Fatalf("foreign event: %d %s, want 409 %s", code, body, want)
			}
		}
		var u models.User
		db.Where("id = ?", "user_1").Take(&u)
		if u.ClerkUpdatedAt != 100 || *u.Email != "a@example.com" {
			t.Errorf("user_1 = %d %s after a foreign event, want it untouched", u.ClerkUpdatedAt, *u.Email)
		}
		var outcome string
		db.Raw("SELECT outcome FROM webhook_events WHERE svix_id = 'msg_2'").Scan(&outcome)
		if outcome != "foreign_instance" {
			t.Errorf("msg_2 recorded as %q, want foreign_instance", outcome)
		}
		if code, body := send("msg_3", userEvent("user.updated", "user_1", 300, "a@example.com")); code != 200 || body != `{"outcome":"applied"}` {
			t.Errorf("event without instance_id: %d %s, want 200 applied", code, body)
		}
		if code, _ := send("msg_4", withInstance(deletedEvent("user_1"), "ins_dev")); code != 409 {
			t.Errorf("foreign deletion: %d, want 409", code)
		}
		db.Where("id = ?", "user_1").Take(&u)
		if u.Deleted() {
			t.Error("a foreign instance's user.deleted tombstoned the user")
		}
	})
}

// A database already bound (by the key's JWKS at serve's start, say)
// refuses another instance's very first event.
func TestWebhookRefusesForeignInstanceOfABoundDatabase(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		if _, err := models.BindInstance(t.Context(), db, "ins_prod"); err != nil {
			t.Fatal(err)
		}
		h := newHandler(t, db, secret1)
		body := withInstance(userEvent("user.created", "user_1", 100, "a@example.com"), "ins_dev")
		if rec := post(h, body, signed(t, secret1, "msg_1", time.Now(), body)); rec.Code != 409 {
			t.Fatalf("status %d, want 409", rec.Code)
		}
		var n int64
		db.Model(&models.User{}).Count(&n)
		if n != 0 {
			t.Errorf("%d users, want none", n)
		}
	})
}
