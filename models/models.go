// Package models owns the database: opening it, the schema migrations, and
// the one engine (engine.go, rules.go) through which every path (webhook,
// login, backfill, reconcile) writes users, organizations and memberships.
package models

import (
	"errors"
	"time"
)

// User is a row of the users table.
type User struct {
	ID             string `gorm:"primaryKey"`
	Email          *string
	FirstName      *string
	LastName       *string
	ImageURL       *string
	Username       *string
	PhoneNumber    *string
	Tier           string
	ClerkUpdatedAt int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeletedAt      *time.Time // a plain column, not gorm.DeletedAt: tombstones stay visible
	SyncSource     Source
	EmailVerified  bool
	RawJSON        *string `gorm:"column:raw_json"`
	SyncedAt       *time.Time
}

// Deleted reports whether the row is a tombstone.
func (u User) Deleted() bool { return u.DeletedAt != nil }

// WebhookEvent is a row of webhook_events: one per processed Svix message.
type WebhookEvent struct {
	SvixID     string `gorm:"primaryKey"`
	EventType  string
	UserID     *string
	Outcome    EventOutcome
	ReceivedAt time.Time
}

// Source names the path that last changed a row.
type Source string

// The paths into the tables.
const (
	SourceWebhook   Source = "webhook"
	SourceLogin     Source = "login"
	SourceBackfill  Source = "backfill"
	SourceReconcile Source = "reconcile"
)

// Outcome is what applying a snapshot or a deletion did to the users table.
type Outcome string

// What a change did to its row.
const (
	Created   Outcome = "created"   // no row existed; one was inserted
	Updated   Outcome = "updated"   // the snapshot was newer and replaced the row
	Unchanged Outcome = "unchanged" // the row already holds this updated_at
	Stale     Outcome = "stale"     // the row holds a newer snapshot
	Gone      Outcome = "gone"      // the row is a tombstone; nothing changes it
	Deleted   Outcome = "deleted"   // Tombstone turned the row (or nothing) into a tombstone
)

// Wrote reports whether the outcome changed the users table.
func (o Outcome) Wrote() bool { return o == Created || o == Updated || o == Deleted }

// Tiers the application may hold; anything else in public_metadata.tier is ignored.
const (
	TierFree = "FREE"
	TierPro  = "PRO"
	TierMaxx = "MAXX"
)

// ErrNotFound is returned when no row has the requested id.
var ErrNotFound = errors.New("not found")
