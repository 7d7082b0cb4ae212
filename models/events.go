package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// EventOutcome is the webhook answer for one Svix message.
type EventOutcome string

// Webhook outcomes, as the contract's webhook table names them.
const (
	EventApplied   EventOutcome = "applied"
	EventStale     EventOutcome = "stale"
	EventDuplicate EventOutcome = "duplicate"
	EventIgnored   EventOutcome = "ignored"
)

// EventKind says what an event asks of the users table.
type EventKind int

// What a Clerk event does.
const (
	EventIgnore EventKind = iota // an event type usersync does not act on
	EventUpsert                  // user.created, user.updated
	EventDelete                  // user.deleted
)

// Event is a verified, decoded webhook delivery.
type Event struct {
	SvixID   string
	Type     string // Clerk's event type, e.g. "user.created"
	Kind     EventKind
	UserID   string
	Snapshot Snapshot // for EventUpsert
}

// errDuplicate rolls back an event whose svix id was already recorded.
var errDuplicate = errors.New("duplicate svix id")

// ProcessEvent applies an event and records its svix id in the same
// transaction, so a redelivered message changes nothing and is answered
// EventDuplicate, and nothing is recorded unless its effect is committed.
func ProcessEvent(ctx context.Context, db *gorm.DB, ev Event) (EventOutcome, error) {
	outcome, err := inTx(ctx, db, func(tx *gorm.DB) (EventOutcome, error) {
		at := now()
		outcome, err := applyEvent(tx, ev, at)
		if err != nil {
			return "", err
		}
		rec := WebhookEvent{SvixID: ev.SvixID, EventType: ev.Type, Outcome: outcome, ReceivedAt: at}
		if ev.UserID != "" {
			rec.UserID = &ev.UserID
		}
		// Last, so a concurrent redelivery waits here for the first to commit.
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rec)
		if res.Error != nil {
			return "", fmt.Errorf("record event %s: %w", ev.SvixID, res.Error)
		}
		if res.RowsAffected == 0 {
			return "", errDuplicate
		}
		return outcome, nil
	})
	if errors.Is(err, errDuplicate) {
		return EventDuplicate, nil
	}
	return outcome, err
}

func applyEvent(tx *gorm.DB, ev Event, at time.Time) (EventOutcome, error) {
	var outcome Outcome
	var err error
	switch ev.Kind {
	case EventUpsert:
		outcome, err = applySnapshot(tx, ev.Snapshot, SourceWebhook, at)
	case EventDelete:
		outcome, err = tombstone(tx, ev.UserID, SourceWebhook, at)
	default:
		return EventIgnored, nil
	}
	if err != nil {
		return "", err
	}
	if outcome.Wrote() {
		return EventApplied, nil
	}
	return EventStale, nil
}
