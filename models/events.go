package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
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
	// Organizations and memberships (contract section 7).
	EventOrgUpsert        // organization.created, organization.updated
	EventOrgDelete        // organization.deleted
	EventMembershipUpsert // organizationMembership.created, .updated
	EventMembershipDelete // organizationMembership.deleted
)

// Event is a verified, decoded webhook delivery.
type Event struct {
	SvixID   string
	Type     string // Clerk's event type, e.g. "user.created"
	Kind     EventKind
	UserID   string   // data.id: the user, organization or membership id
	Snapshot Snapshot // for EventUpsert
	// Org is the organization of EventOrgUpsert and EventOrgDelete (only
	// its ID for a deletion); Membership that of the membership events.
	Org        OrgSnapshot
	Membership MembershipSnapshot
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
	fast := DialectOf(db) == Postgres
	return inTx(ctx, db, func(tx *gorm.DB) ([]EventResult, error) {
		res, err := processBatch(tx, evs, now(), fast)
		if fast && errors.Is(err, gorm.ErrDuplicatedKey) {
			fast = false // an email is held by another row: run again with the full rules
		}
		return res, err
	})
}

// processBatch records the events first (which finds the duplicates), then
// applies the rest, then corrects the outcomes recorded as "applied" that
// turned out otherwise, all in the caller's transaction.
func processBatch(tx *gorm.DB, evs []Event, at time.Time, fast bool) ([]EventResult, error) {
	res := make([]EventResult, len(evs))
	todo, err := recordEvents(tx, evs, res, at)
	if err != nil {
		return nil, err
	}
	if fast && independentUpserts(evs, todo) {
		err = upsertFast(tx, evs, todo, res, at)
	} else {
		err = applyEvents(tx, evs, todo, res, at)
	}
	if err != nil {
		return nil, err
	}
	return res, fixOutcomes(tx, evs, todo, res)
}

// recordEvents inserts a webhook_events row per new svix id, recording
// user events as "applied" for now, and marks the rest EventDuplicate:
// those already recorded, and repeats within the batch. It returns the
// indexes of the new events in order. A concurrent delivery of the same
// message waits on the insert until the other transaction ends.
func recordEvents(tx *gorm.DB, evs []Event, res []EventResult, at time.Time) ([]int, error) {
	var sql strings.Builder
	sql.WriteString("INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at) VALUES ")
	args := make([]any, 0, 5*len(evs))
	seen := make(map[string]bool, len(evs))
	var fresh []int
	for i, ev := range evs {
		if seen[ev.SvixID] {
			res[i] = EventResult{Outcome: EventDuplicate}
			continue
		}
		seen[ev.SvixID] = true
		if len(fresh) > 0 {
			sql.WriteString(", ")
		}
		sql.WriteString("(?, ?, ?, ?, ?)")
		var userID *string
		if ev.UserID != "" {
			userID = &ev.UserID
		}
		outcome := EventApplied
		if ev.Kind == EventIgnore {
			outcome = EventIgnored
		}
		args = append(args, ev.SvixID, ev.Type, userID, string(outcome), at)
		fresh = append(fresh, i)
	}
	sql.WriteString(" ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id")
	var inserted []string
	if err := tx.Raw(sql.String(), args...).Scan(&inserted).Error; err != nil {
		return nil, fmt.Errorf("record %d events: %w", len(fresh), err)
	}
	isNew := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		isNew[id] = true
	}
	todo := fresh[:0]
	for _, i := range fresh {
		if isNew[evs[i].SvixID] {
			todo = append(todo, i)
		} else {
			res[i] = EventResult{Outcome: EventDuplicate}
		}
	}
	return todo, nil
}

// fixOutcomes rewrites the recorded outcome of events that were not applied.
func fixOutcomes(tx *gorm.DB, evs []Event, todo []int, res []EventResult) error {
	var stale []string
	for _, i := range todo {
		if res[i].Outcome == EventStale {
			stale = append(stale, evs[i].SvixID)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	err := tx.Model(&WebhookEvent{}).Where("svix_id IN ?", stale).Update("outcome", EventStale).Error
	if err != nil {
		return fmt.Errorf("record outcomes: %w", err)
	}
	return nil
}

// independentUpserts reports whether the events to apply are all upserts
// (or ignored) for distinct users with distinct emails, so applying them
// together is the same as applying them in order.
func independentUpserts(evs []Event, todo []int) bool {
	users := make(map[string]bool, len(todo))
	emails := make(map[string]bool, len(todo))
	for _, i := range todo {
		switch evs[i].Kind {
		case EventIgnore:
			continue
		case EventUpsert:
		default:
			return false
		}
		s := evs[i].Snapshot.normalized()
		if users[s.ID] || (s.Email != nil && emails[*s.Email]) {
			return false
		}
		users[s.ID] = true
		if s.Email != nil {
			emails[*s.Email] = true
		}
	}
	return true
}

// upsertFast is the Postgres path for independent upserts: the same upsert
// statement as ApplySnapshots, without reading the rows first. RETURNING
// says which rows it wrote and whether it inserted them (xmax = 0); only
// rows it did not write are read, to tell stale from unchanged or gone. An
// email held by another live row makes the statement fail on the unique
// index, and ProcessEvents runs the batch again with the full rules.
func upsertFast(tx *gorm.DB, evs []Event, todo []int, res []EventResult, at time.Time) error {
	snaps := make(map[string]Snapshot, len(todo))
	var list []Snapshot
	for _, i := range todo {
		if evs[i].Kind == EventUpsert {
			s := evs[i].Snapshot.normalized()
			snaps[s.ID] = s
			list = append(list, s)
		}
	}
	written, err := upsertMany(tx, list, nil, SourceWebhook, at)
	if err != nil {
		return err
	}
	var missing []string
	for id := range snaps {
		if _, ok := written[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		var own []User
		if err := tx.Select("id", "clerk_updated_at", "deleted_at").Where("id IN ?", missing).Find(&own).Error; err != nil {
			return fmt.Errorf("read %d users: %w", len(missing), err)
		}
		for i := range own {
			if written[own[i].ID] = verdict(&own[i], snaps[own[i].ID]); written[own[i].ID] == "" {
				return errRaced // changed under us: run the batch again
			}
		}
	}
	for _, i := range todo {
		if evs[i].Kind == EventUpsert {
			res[i] = eventResult(written[evs[i].Snapshot.ID])
		} else {
			res[i] = EventResult{Outcome: EventIgnored}
		}
	}
	return nil
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
	case EventOrgUpsert, EventOrgDelete, EventMembershipUpsert, EventMembershipDelete:
		return applyOrgEvent(tx, ev, at)
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
