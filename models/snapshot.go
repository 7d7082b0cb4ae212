package models

import "strings"

// Snapshot is one Clerk user as the table stores it, already mapped from
// Clerk's JSON (primary email chosen and lower-cased, tier validated).
type Snapshot struct {
	ID            string
	Email         *string
	EmailVerified bool
	FirstName     *string
	LastName      *string
	ImageURL      *string
	Username      *string
	PhoneNumber   *string
	// Tier is TierFree, TierPro or TierMaxx when Clerk's public_metadata names
	// one, and "" when the snapshot says nothing about the tier.
	Tier string
	// UpdatedAt is Clerk's updated_at in milliseconds: the ordering key.
	UpdatedAt int64
	// RawJSON is the Clerk user object as Clerk sent it.
	RawJSON string
}

// normalized lower-cases the email, so the live-email index compares
// addresses the way mail systems do, whichever path built the snapshot.
func (s Snapshot) normalized() Snapshot {
	if s.Email != nil {
		e := strings.ToLower(*s.Email)
		s.Email = &e
	}
	return s
}
