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

// EventResult is what processing an event did.
type EventResult struct {
	Outcome EventOutcome
	// Upsert is what the user row underwent (Created, Updated, Stale,
	// Deleted, …); "" for ignored and duplicate events.
	Upsert Outcome
}

// errDuplicate rolls back an event whose svix id was already recorded.
var errDuplicate = errors.New("duplicate svix id")

// ProcessEvent applies an event and records its svix id in the same
// transaction, so a redelivered message changes nothing and is answered
// EventDuplicate, and nothing is recorded unless its effect is committed.
func ProcessEvent(ctx context.Context, db *gorm.DB, ev Event) (EventResult, error) {
	res, err := inTx(ctx, db, func(tx *gorm.DB) (EventResult, error) {
		at := now()
		res, err := applyEvent(tx, ev, at)
		if err != nil {
			return res, err
		}
		rec := WebhookEvent{SvixID: ev.SvixID, EventType: ev.Type, Outcome: res.Outcome, ReceivedAt: at}
		if ev.UserID != "" {
			rec.UserID = &ev.UserID
		}
		// Last, so a concurrent redelivery waits here for the first to commit.
		ins := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rec)
		if ins.Error != nil {
			return res, fmt.Errorf("record event %s: %w", ev.SvixID, ins.Error)
		}
		if ins.RowsAffected == 0 {
			return res, errDuplicate
		}
		return res, nil
	})
	if errors.Is(err, errDuplicate) {
		return EventResult{Outcome: EventDuplicate}, nil
	}
	return res, err
}

func applyEvent(tx *gorm.DB, ev Event, at time.Time) (EventResult, error) {
	var upsert Outcome
	var err error
	switch ev.Kind {
	case EventUpsert:
		upsert, err = applySnapshot(tx, ev.Snapshot, SourceWebhook, at)
	case EventDelete:
		upsert, err = tombstone(tx, ev.UserID, SourceWebhook, at)
	default:
		return EventResult{Outcome: EventIgnored}, nil
	}
	if err != nil {
		return EventResult{}, err
	}
	if upsert.Wrote() {
		return EventResult{Outcome: EventApplied, Upsert: upsert}, nil
	}
	return EventResult{Outcome: EventStale, Upsert: upsert}, nil
}
