package clerkapi

import (
	"bytes"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/usersync/usersync/models"
)

// ErrInvalidUser is returned for a user object that cannot be mapped.
var ErrInvalidUser = errors.New("invalid Clerk user")

// clerkUser is the part of Clerk's user object a snapshot needs. Decoding only
// these fields (rather than the SDK's full clerk.User) is most of what makes
// a backfill page cheap to map.
type clerkUser struct {
	ID                    string         `json:"id"`
	FirstName             *string        `json:"first_name"`
	LastName              *string        `json:"last_name"`
	ImageURL              *string        `json:"image_url"`
	Username              *string        `json:"username"`
	PrimaryEmailAddressID *string        `json:"primary_email_address_id"`
	PrimaryPhoneNumberID  *string        `json:"primary_phone_number_id"`
	EmailAddresses        []emailAddress `json:"email_addresses"`
	PhoneNumbers          []phoneNumber  `json:"phone_numbers"`
	PublicMetadata        jsontext.Value `json:"public_metadata"`
	UpdatedAt             int64          `json:"updated_at"`
}

type emailAddress struct {
	ID           string `json:"id"`
	EmailAddress string `json:"email_address"`
	Verification *struct {
		Status string `json:"status"`
	} `json:"verification"`
}

type phoneNumber struct {
	ID          string `json:"id"`
	PhoneNumber string `json:"phone_number"`
}

// SnapshotFromJSON maps a Clerk user object (a webhook's data, a Backend API
// response, or one user of a listing) to a Snapshot (contract rules 2 and
// 4), keeping raw as the snapshot's RawJSON. It is the only mapping.
func SnapshotFromJSON(raw []byte) (models.Snapshot, error) {
	var u clerkUser
	if err := json.Unmarshal(raw, &u, decodeOptions); err != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	if u.ID == "" {
		return models.Snapshot{}, fmt.Errorf("%w: no id", ErrInvalidUser)
	}
	s := snapshotOf(&u, raw)
	if err := checkUser(s); err != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	return s, nil
}

// snapshotOf is contract rules 2 and 4 for a decoded user.
func snapshotOf(u *clerkUser, raw []byte) models.Snapshot {
	s := models.Snapshot{
		ID:        u.ID,
		FirstName: nonEmpty(u.FirstName),
		LastName:  nonEmpty(u.LastName),
		ImageURL:  nonEmpty(u.ImageURL),
		Username:  nonEmpty(u.Username),
		Tier:      tierOf(u.PublicMetadata),
		UpdatedAt: u.UpdatedAt,
		RawJSON:   string(storable(raw)),
	}
	if e := u.primaryEmail(); e != nil {
		// Not nonEmpty: an address without its NUL is another address, so a
		// NUL is refused (checkUser) rather than dropped.
		if addr := strings.ToLower(e.EmailAddress); addr != "" {
			s.Email = &addr
		}
		s.EmailVerified = s.Email != nil && e.Verification != nil && e.Verification.Status == "verified"
	}
	if p := u.primaryPhone(); p != nil {
		s.PhoneNumber = nonEmpty(&p.PhoneNumber)
	}
	return s
}

func (u *clerkUser) primaryEmail() *emailAddress {
	for i := range u.EmailAddresses {
		if u.PrimaryEmailAddressID != nil && u.EmailAddresses[i].ID == *u.PrimaryEmailAddressID {
			return &u.EmailAddresses[i]
		}
	}
	return nil
}

func (u *clerkUser) primaryPhone() *phoneNumber {
	for i := range u.PhoneNumbers {
		if u.PrimaryPhoneNumberID != nil && u.PhoneNumbers[i].ID == *u.PrimaryPhoneNumberID {
			return &u.PhoneNumbers[i]
		}
	}
	return nil
}

// tierOf reads public_metadata.tier: FREE, PRO or MAXX in any case, else "".
func tierOf(publicMetadata jsontext.Value) string {
	if publicMetadata.Kind() != '{' {
		return ""
	}
	var md struct {
		Tier any `json:"tier"`
	}
	if json.Unmarshal(publicMetadata, &md, decodeOptions) != nil {
		return ""
	}
	t, _ := md.Tier.(string)
	switch t = strings.ToUpper(t); t {
	case models.TierFree, models.TierPro, models.TierMaxx:
		return t
	}
	return ""
}

// nonEmpty turns Clerk's "" into NULL, so the table has one way to say
// "none", and drops NUL characters, which Postgres text cannot hold.
func nonEmpty(s *string) *string {
	if s == nil {
		return nil
	}
	v := strings.ReplaceAll(*s, "\x00", "")
	if v == "" {
		return nil
	}
	return &v
}

// unstorable matches the JSON escapes Postgres's jsonb refuses: \u0000 and
// a lone UTF-16 surrogate (it refuses invalid UTF-8 too). A user can put any
// of these in their own unsafe_metadata, and one such user must not fail
// every write of them.
var unstorable = regexp.MustCompile(`(?i)\\u(0000|d[89a-f])`)

// storable returns raw as Clerk sent it, or, when it holds an escape
// Postgres refuses or invalid UTF-8, re-encoded without NUL characters
// (lone surrogates and invalid bytes become U+FFFD).
func storable(raw []byte) []byte {
	if utf8.Valid(raw) && (!bytes.Contains(raw, []byte(`\u`)) || !unstorable.Match(raw)) {
		return raw
	}
	dec := jsonv1.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers exactly as sent
	var v any
	if dec.Decode(&v) != nil {
		return raw
	}
	out, err := jsonv1.Marshal(withoutNUL(v))
	if err != nil {
		return raw
	}
	return out
}

func withoutNUL(v any) any {
	switch v := v.(type) {
	case string:
		return strings.ReplaceAll(v, "\x00", "")
	case []any:
		for i := range v {
			v[i] = withoutNUL(v[i])
		}
	case map[string]any:
		clean := make(map[string]any, len(v))
		for k, e := range v {
			clean[strings.ReplaceAll(k, "\x00", "")] = withoutNUL(e)
		}
		return clean
	}
	return v
}
