package models

import (
	"strings"
	"time"
)

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

// row is the users row a snapshot becomes when it is applied.
func (s Snapshot) row(email *string, src Source, now time.Time) User {
	tier := s.Tier
	if tier == "" {
		tier = TierFree
	}
	var raw *string
	if s.RawJSON != "" {
		raw = &s.RawJSON
	}
	return User{
		ID:             s.ID,
		Email:          email,
		FirstName:      s.FirstName,
		LastName:       s.LastName,
		ImageURL:       s.ImageURL,
		Username:       s.Username,
		PhoneNumber:    s.PhoneNumber,
		Tier:           tier,
		ClerkUpdatedAt: s.UpdatedAt,
		CreatedAt:      now,
		UpdatedAt:      now,
		SyncSource:     src,
		EmailVerified:  email != nil && s.EmailVerified,
		RawJSON:        raw,
		SyncedAt:       &now,
	}
}
