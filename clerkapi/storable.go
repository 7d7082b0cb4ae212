package clerkapi

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/usersync/usersync/models"
)

// Bounds of what the tables can store and index. Postgres refuses an index
// entry over about 2,700 bytes (users_pkey, users_email_live,
// organization_memberships_user_id…), so ids, emails and roles are bounded
// well under it; members_count is an INTEGER.
const (
	maxIDBytes    = 255
	maxEmailBytes = 320 // RFC 5321's 64 + 1 + 255
	maxRoleBytes  = 255
)

// UnstorableError is a signed value the database cannot store. It is
// answered 400, never 503: a retry of the same event cannot succeed. Its
// text names the field, never the value.
type UnstorableError struct {
	Field   string
	Problem string
}

func (e *UnstorableError) Error() string { return e.Field + " " + e.Problem }

// checkString refuses a stored string the database cannot hold or index:
// invalid UTF-8, a control character (NUL among them), or more than max bytes.
func checkString(field, v string, max int) error {
	switch {
	case len(v) > max:
		return &UnstorableError{field, fmt.Sprintf("is longer than %d bytes", max)}
	case !utf8.ValidString(v):
		return &UnstorableError{field, "is not valid UTF-8"}
	case hasControl(v):
		return &UnstorableError{field, "holds a control character"}
	}
	return nil
}

// checkText refuses free text (names, URLs) Postgres cannot store; NUL is
// already dropped by nonEmpty, and text is not indexed, so any length goes.
func checkText(field string, v *string) error {
	if v != nil && !utf8.ValidString(*v) {
		return &UnstorableError{field, "is not valid UTF-8"}
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkUser(s models.Snapshot) error {
	email := ""
	if s.Email != nil {
		email = *s.Email
	}
	return firstError(
		checkString("id", s.ID, maxIDBytes),
		checkString("primary email address", email, maxEmailBytes),
		checkText("first_name", s.FirstName), checkText("last_name", s.LastName),
		checkText("image_url", s.ImageURL), checkText("username", s.Username),
		checkText("phone_number", s.PhoneNumber),
	)
}

func checkOrg(o models.OrgSnapshot) error {
	err := firstError(
		checkString("id", o.ID, maxIDBytes),
		checkText("name", o.Name), checkText("slug", o.Slug), checkText("image_url", o.ImageURL),
		checkText("created_by", o.CreatedBy),
	)
	if err == nil && o.MembersCount != nil && (*o.MembersCount < math.MinInt32 || *o.MembersCount > math.MaxInt32) {
		err = &UnstorableError{"members_count", "is out of range"}
	}
	return err
}

func checkMembership(m models.MembershipSnapshot) error {
	return firstError(
		checkString("id", m.ID, maxIDBytes),
		checkString("public_user_data.user_id", m.UserID, maxIDBytes),
		checkString("role", m.Role, maxRoleBytes),
	)
}
