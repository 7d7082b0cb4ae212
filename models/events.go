package models

import (
	"context"
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

// ProcessEvent applies an event and records its svix id in the same
// transaction, so a redelivered message changes nothing and is answered
// EventDuplicate, and nothing is recorded unless its effect is committed.
func ProcessEvent(ctx context.Context, db *gorm.DB, ev Event) (EventResult, error) {
	res, err := ProcessEvents(ctx, db, []Event{ev})
	if err != nil {
		return EventResult{}, err
	}
	return res[0], nil
}

// ProcessEvents processes several events in one transaction, with the same
// result as ProcessEvent called for each in order: the batch commits, or
// none of it does. Concurrent deliveries share a commit this way (Batcher).
func ProcessEvents(ctx context.Context, db *gorm.DB, evs []Event) ([]EventResult, error) {
	return inTx(ctx, db, func(tx *gorm.DB) ([]EventResult, error) {
		return processBatch(tx, evs, now())
	})
}

func processBatch(tx *gorm.DB, evs []Event, at time.Time) ([]EventResult, error) {
	res := make([]EventResult, len(evs))
	todo, err := skipDuplicates(tx, evs, res)
	if err != nil {
		return nil, err
	}
	if err := applyEvents(tx, evs, todo, res, at); err != nil {
		return nil, err
	}
	records := make([]WebhookEvent, 0, len(todo))
	for _, i := range todo {
		rec := WebhookEvent{SvixID: evs[i].SvixID, EventType: evs[i].Type, Outcome: res[i].Outcome, ReceivedAt: at}
		if evs[i].UserID != "" {
			rec.UserID = &evs[i].UserID
		}
		records = append(records, rec)
	}
	if len(records) == 0 {
		return res, nil
	}
	// A concurrent delivery of the same message waits here for the other
	// transaction; if that one commits, this batch starts over and then
	// sees the message as a duplicate.
	ins := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&records)
	if ins.Error != nil {
		return nil, fmt.Errorf("record %d events: %w", len(records), ins.Error)
	}
	if ins.RowsAffected != int64(len(records)) {
		return nil, errRaced
	}
	return res, nil
}

// skipDuplicates marks events whose svix id is already recorded, or appears
// earlier in the batch, as EventDuplicate, and returns the rest in order.
func skipDuplicates(tx *gorm.DB, evs []Event, res []EventResult) ([]int, error) {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.SvixID
	}
	var recorded []string
	if err := tx.Model(&WebhookEvent{}).Where("svix_id IN ?", ids).Pluck("svix_id", &recorded).Error; err != nil {
		return nil, fmt.Errorf("look up svix ids: %w", err)
	}
	seen := make(map[string]bool, len(evs))
	for _, id := range recorded {
		seen[id] = true
	}
	todo := make([]int, 0, len(evs))
	for i, ev := range evs {
		if seen[ev.SvixID] {
			res[i] = EventResult{Outcome: EventDuplicate}
			continue
		}
		seen[ev.SvixID] = true
		todo = append(todo, i)
	}
	return todo, nil
}

// applyEvents applies the events at todo. When they are all upserts, the
// batched upsert takes them together (it falls back to one at a time,
// in order, when they touch the same user or email); a deletion among them
// sends the whole batch through the single-event path in order.
func applyEvents(tx *gorm.DB, evs []Event, todo []int, res []EventResult, at time.Time) error {
	var snaps []Snapshot
	var upserts []int
	for _, i := range todo {
		switch evs[i].Kind {
		case EventUpsert:
			snaps, upserts = append(snaps, evs[i].Snapshot), append(upserts, i)
		case EventIgnore:
			res[i] = EventResult{Outcome: EventIgnored}
		default:
			return applyInOrderEvents(tx, evs, todo, res, at)
		}
	}
	if len(snaps) == 0 {
		return nil
	}
	outcomes, err := applyChunk(tx, snaps, SourceWebhook, at)
	if err != nil {
		return err
	}
	for j, i := range upserts {
		res[i] = eventResult(outcomes[j])
	}
	return nil
}

func applyInOrderEvents(tx *gorm.DB, evs []Event, todo []int, res []EventResult, at time.Time) error {
	for _, i := range todo {
		var err error
		if res[i], err = applyEvent(tx, evs[i], at); err != nil {
			return err
		}
	}
	return nil
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
	return eventResult(upsert), nil
}

// eventResult names an upsert's outcome as the webhook answers it.
func eventResult(upsert Outcome) EventResult {
	if upsert.Wrote() {
		return EventResult{Outcome: EventApplied, Upsert: upsert}
	}
	return EventResult{Outcome: EventStale, Upsert: upsert}
}
