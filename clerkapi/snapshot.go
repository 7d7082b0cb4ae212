package clerkapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/clerk/clerk-sdk-go/v2"

	"github.com/usersync/usersync/models"
)

// ErrInvalidUser is returned for a user object that cannot be mapped.
var ErrInvalidUser = errors.New("invalid Clerk user")

// SnapshotFromJSON maps a Clerk user object (a webhook's data, or a Backend
// API response) to a Snapshot, keeping raw as the snapshot's RawJSON.
func SnapshotFromJSON(raw []byte) (models.Snapshot, error) {
	var u clerk.User
	if err := json.Unmarshal(raw, &u); err != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %v", ErrInvalidUser, err)
	}
	if u.ID == "" {
		return models.Snapshot{}, fmt.Errorf("%w: no id", ErrInvalidUser)
	}
	s := SnapshotFromUser(&u)
	s.RawJSON = string(raw)
	return s, nil
}

// SnapshotFromUser maps a decoded Clerk user (contract rules 2 and 4). It
// leaves RawJSON empty; callers that have Clerk's bytes set it.
func SnapshotFromUser(u *clerk.User) models.Snapshot {
	s := models.Snapshot{
		ID:        u.ID,
		FirstName: nonEmpty(u.FirstName),
		LastName:  nonEmpty(u.LastName),
		ImageURL:  nonEmpty(u.ImageURL),
		Username:  nonEmpty(u.Username),
		Tier:      tierOf(u.PublicMetadata),
		UpdatedAt: u.UpdatedAt,
	}
	if e := primaryEmail(u); e != nil {
		addr := strings.ToLower(e.EmailAddress)
		s.Email = nonEmpty(&addr)
		s.EmailVerified = s.Email != nil && e.Verification != nil && e.Verification.Status == "verified"
	}
	if p := primaryPhone(u); p != nil {
		s.PhoneNumber = nonEmpty(&p.PhoneNumber)
	}
	return s
}

func primaryEmail(u *clerk.User) *clerk.EmailAddress {
	if u.PrimaryEmailAddressID == nil {
		return nil
	}
	for _, e := range u.EmailAddresses {
		if e != nil && e.ID == *u.PrimaryEmailAddressID {
			return e
		}
	}
	return nil
}

func primaryPhone(u *clerk.User) *clerk.PhoneNumber {
	if u.PrimaryPhoneNumberID == nil {
		return nil
	}
	for _, p := range u.PhoneNumbers {
		if p != nil && p.ID == *u.PrimaryPhoneNumberID {
			return p
		}
	}
	return nil
}

// tierOf reads public_metadata.tier: FREE, PRO or MAXX in any case, else "".
func tierOf(publicMetadata json.RawMessage) string {
	var md struct {
		Tier any `json:"tier"`
	}
	if json.Unmarshal(publicMetadata, &md) != nil {
		return ""
	}
	t, _ := md.Tier.(string)
	switch t = strings.ToUpper(t); t {
	case models.TierFree, models.TierPro, models.TierMaxx:
		return t
	}
	return ""
}

// nonEmpty turns Clerk's "" into NULL, so the table has one way to say "none".
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}
