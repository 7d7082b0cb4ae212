package models

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
	// EventForeignInstance is a signed event of another Clerk instance than
	// the one the database mirrors (contract section 9): answered 409.
	EventForeignInstance EventOutcome = "foreign_instance"
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

// isOrgEvent reports whether the event changes organizations or memberships.
func (k EventKind) isOrgEvent() bool { return k >= EventOrgUpsert }

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

// ProcessEvents applies events in one transaction, as if one after another,
// and records each svix id in it: a redelivered message changes nothing and
// is answered EventDuplicate, and nothing is recorded unless its effect is
// committed (rule 6). The batch commits, or none of it does; concurrent
// deliveries share a commit this way (the handlers' batcher).
func ProcessEvents(ctx context.Context, db *gorm.DB, evs []Event) ([]EventResult, error) {
	return inTx(ctx, db, func(tx *gorm.DB) ([]EventResult, error) {
		return processBatch(tx, evs, now())
	})
}

// processBatch records the events first (which finds the duplicates), then
// applies the new ones through the engine, then corrects the outcomes
// recorded as "applied" that turned out otherwise.
func processBatch(tx *gorm.DB, evs []Event, at time.Time) ([]EventResult, error) {
	res := make([]EventResult, len(evs))
	todo, err := recordEvents(tx, evs, res, at)
	if err != nil {
		return nil, err
	}
	var changes []Change
	var from []int // from[j] is the index in evs of changes[j]
	for _, i := range todo {
		cs := evs[i].changes()
		if len(cs) == 0 {
			res[i] = EventResult{Outcome: EventIgnored}
		}
		for _, c := range cs {
			changes, from = append(changes, c), append(from, i)
		}
	}
	outcomes, err := apply(tx, changes, SourceWebhook, at)
	if err != nil {
		return nil, err
	}
	for j, o := range outcomes {
		i := from[j]
		switch {
		case !evs[i].Kind.isOrgEvent():
			res[i] = eventResult(o)
		case o.Wrote():
			res[i] = EventResult{Outcome: EventApplied}
		case res[i].Outcome == "":
			res[i] = EventResult{Outcome: EventStale} // unless another of its changes wrote
		}
	}
	return res, fixOutcomes(tx, evs, todo, res)
}

// changes is what an event asks of the tables: none for the event types
// usersync does not act on.
func (ev Event) changes() []Change {
	switch ev.Kind {
	case EventUpsert:
		return []Change{UserChange(ev.Snapshot)}
	case EventDelete:
		return []Change{UserDeletion(ev.UserID)}
	case EventOrgUpsert:
		return []Change{{Kind: ApplyOrg, Org: ev.Org}}
	case EventOrgDelete:
		return []Change{{Kind: DeleteOrg, Org: ev.Org}}
	case EventMembershipUpsert:
		return MembershipChanges(ApplyMembership, ev.Membership)
	case EventMembershipDelete:
		return MembershipChanges(DeleteMembership, ev.Membership)
	}
	return nil
}

// recordSQL inserts the batch's new svix ids and returns those it inserted;
// a concurrent delivery of the same message waits on the insert until the
// other transaction ends.
var recordSQL = map[Dialect]string{
	Postgres: `INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at)
	SELECT r.svix_id, r.event_type, r.user_id, r.outcome, $5
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(svix_id, event_type, user_id, outcome)
	ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id`,
	// A JSON array of rows; "WHERE true" lets SQLite parse ON CONFLICT after a SELECT.
	SQLite: `INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at)
	SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?2 FROM json_each(?1) WHERE true
	ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id`,
}

// recordEvents inserts a webhook_events row per new svix id, recording
// user events as "applied" for now, marks the others EventDuplicate in res
// (those recorded before, and repeats within the batch), and returns the
// indexes of the new ones, in order.
func recordEvents(tx *gorm.DB, evs []Event, res []EventResult, at time.Time) ([]int, error) {
	var fresh []int // the batch's events, a repeated svix id only at its first
	seen := make(map[string]bool, len(evs))
	for i, ev := range evs {
		if !seen[ev.SvixID] {
			seen[ev.SvixID] = true
			fresh = append(fresh, i)
		}
	}
	// Inserted in svix id order: two batches holding the same messages in
	// other orders then wait for each other instead of deadlocking.
	byID := slices.Clone(fresh)
	slices.SortFunc(byID, func(a, b int) int { return strings.Compare(evs[a].SvixID, evs[b].SvixID) })
	var ids, types, outcomes []string
	var users []*string
	for _, i := range byID {
		ev := evs[i]
		var userID *string
		if ev.UserID != "" {
			userID = &ev.UserID
		}
		outcome := EventApplied
		if ev.Kind == EventIgnore {
			outcome = EventIgnored
		}
		ids, types, users, outcomes = append(ids, ev.SvixID), append(types, ev.Type), append(users, userID),
			append(outcomes, string(outcome))
	}
	dialect := DialectOf(tx)
	args := []any{ids, types, users, outcomes, at}
	if dialect == SQLite {
		rows := make([][4]*string, len(ids))
		for i := range ids {
			rows[i] = [4]*string{&ids[i], &types[i], users[i], &outcomes[i]}
		}
		b, _ := json.Marshal(rows) // strings and nils always encode
		args = []any{string(b), at}
	}
	isNew := make(map[string]bool, len(ids))
	q := queryer{tx: tx, dialect: dialect}
	err := q.each(recordSQL[dialect], args, func(scan func(...any) error) error {
		var id string
		err := scan(&id)
		isNew[id] = true
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", len(ids), err)
	}
	var todo []int
	for i := range res {
		res[i] = EventResult{Outcome: EventDuplicate}
	}
	for _, i := range fresh {
		if isNew[evs[i].SvixID] {
			todo, res[i] = append(todo, i), EventResult{}
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
	q := queryer{tx: tx, dialect: DialectOf(tx)}
	if _, err := q.exec(staleSQL[q.dialect], q.list(stale)); err != nil {
		return fmt.Errorf("record %d outcomes: %w", len(stale), err)
	}
	return nil
}

// staleSQL marks the svix ids given as stale.
var staleSQL = map[Dialect]string{
	Postgres: `UPDATE webhook_events SET outcome = 'stale' WHERE svix_id = ANY($1::text[])`,
	SQLite:   `UPDATE webhook_events SET outcome = 'stale' WHERE svix_id IN (SELECT value FROM json_each(?1))`,
}

// eventResult names an upsert's outcome as the webhook answers it.
func eventResult(upsert Outcome) EventResult {
	if upsert.Wrote() {
		return EventResult{Outcome: EventApplied, Upsert: upsert}
	}
	return EventResult{Outcome: EventStale, Upsert: upsert}
}
