package clerkapi_test

import (
	"testing"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// The objects built for webhook send, the load tool and the fake Clerk are
// what DecodeEvent reads from Clerk.
func TestBuiltEventsDecode(t *testing.T) {
	body, err := clerkapi.EventJSON("user.created", "ins_1", time.Now(), clerkapi.NewUser("user_1", 5, "Ada@Example.com"))
	if err != nil {
		t.Fatal(err)
	}
	ev, instance, err := clerkapi.DecodeEvent("msg_1", body)
	if s := ev.Snapshot; err != nil || ev.Kind != models.EventUpsert || instance != "ins_1" || s.ID != "user_1" || s.UpdatedAt != 5 ||
		s.Email == nil || *s.Email != "ada@example.com" || !s.EmailVerified {
		t.Errorf("user.created: %+v, instance %q, %v", ev, instance, err)
	}
	body, err = clerkapi.EventJSON("user.deleted", "", time.Now(), clerkapi.DeletedUser("user_1"))
	if err != nil {
		t.Fatal(err)
	}
	if ev, instance, err := clerkapi.DecodeEvent("msg_2", body); err != nil || ev.Kind != models.EventDelete || ev.UserID != "user_1" || instance != "" {
		t.Errorf("user.deleted: %+v, instance %q, %v", ev, instance, err)
	}
}
