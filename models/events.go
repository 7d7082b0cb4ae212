package models

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
// none of it does. Concurrent deliveries share a commit this way (the
// handlers' batcher).
func ProcessEvents(ctx context.Context, db *gorm.DB, evs []Event) ([]EventResult, error) {
	return inTx(ctx, db, func(tx *gorm.DB, lock bool) ([]EventResult, error) {
		return processBatch(tx, evs, now(), lock)
	})
}

// processBatch records the events first (which finds the duplicates), then
// applies the rest through the one write path (apply.go), then corrects the
// outcomes recorded as "applied" that turned out otherwise, all in the
// caller's transaction. The first round records the events and, for a
// batch of user events, reads the users they touch: one round trip.
func processBatch(tx *gorm.DB, evs []Event, at time.Time, lock bool) ([]EventResult, error) {
	res := make([]EventResult, len(evs))
	dialect := DialectOf(tx)
	orgs := slices.ContainsFunc(evs, func(ev Event) bool { return ev.Kind.isOrgEvent() })
	var first round
	rec := recordEvents(&first, dialect, evs, at)
	var st *state
	if !orgs && len(evs) <= applyChunk {
		st = readUsers(&first, dialect, eventChanges(evs), lock)
	}
	if err := first.send(tx); err != nil {
		return nil, err
	}
	todo := rec.newEvents(evs, res)
	var err error
	if orgs {
		err = applyInRuns(tx, evs, todo, res, at, lock)
	} else {
		err = applyUserEvents(tx, evs, todo, res, st, at, lock)
	}
	if err != nil {
		return nil, err
	}
	return res, fixOutcomes(tx, evs, todo, res)
}

// applyUserEvents applies the user events at todo through the one write
// path, from the users already read (st) or, when st is nil, reading them.
func applyUserEvents(tx *gorm.DB, evs []Event, todo []int, res []EventResult, st *state, at time.Time, lock bool) error {
	changes := make([]Change, 0, len(todo))
	applied := make([]int, 0, len(todo))
	for _, i := range todo {
		c, ok := evs[i].change()
		if !ok {
			res[i] = EventResult{Outcome: EventIgnored}
			continue
		}
		changes, applied = append(changes, c), append(applied, i)
	}
	var outcomes []Outcome
	var err error
	if st != nil {
		outcomes, err = st.apply(tx, changes, SourceWebhook, at)
	} else {
		outcomes, err = applyChanges(tx, changes, SourceWebhook, at, lock)
	}
	if err != nil {
		return err
	}
	for j, i := range applied {
		res[i] = eventResult(outcomes[j])
	}
	return nil
}

// applyInRuns applies a batch that mixes user and organization events in
// order: each run of consecutive user events through applyUserEvents, each
// organization or membership event through applyOrgEvent, so the batch
// ends as if its events had come one at a time (a user.deleted before a
// membership of that user makes the membership a tombstone, rule 9).
func applyInRuns(tx *gorm.DB, evs []Event, todo []int, res []EventResult, at time.Time, lock bool) error {
	for len(todo) > 0 {
		i := todo[0]
		if evs[i].Kind.isOrgEvent() {
			r, err := applyOrgEvent(tx, evs[i], at)
			if err != nil {
				return err
			}
			res[i], todo = r, todo[1:]
			continue
		}
		n := 1
		for n < len(todo) && !evs[todo[n]].Kind.isOrgEvent() {
			n++
		}
		if err := applyUserEvents(tx, evs, todo[:n], res, nil, at, lock); err != nil {
			return err
		}
		todo = todo[n:]
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

// change is what a user event asks of the users table; false for the
// events that ask nothing of it.
func (ev Event) change() (Change, bool) {
	switch ev.Kind {
	case EventUpsert:
		return Change{Snapshot: ev.Snapshot}, true
	case EventDelete:
		return Change{Snapshot: Snapshot{ID: ev.UserID}, Delete: true}, true
	}
	return Change{}, false
}

// eventChanges are the changes evs would make, for reading their users
// before knowing which events are new.
func eventChanges(evs []Event) []Change {
	changes := make([]Change, 0, len(evs))
	for _, ev := range evs {
		if c, ok := ev.change(); ok {
			changes = append(changes, c)
		}
	}
	return changes
}

// recording is the insert of a batch's svix ids and, once its round has
// been sent, which of them it inserted.
type recording struct {
	fresh []int           // the batch's events, a repeated svix id only at its first
	isNew map[string]bool // the svix ids inserted
}

// recordEvents adds to r the insert of a webhook_events row per new svix
// id, recording user events as "applied" for now.
func recordEvents(r *round, dialect Dialect, evs []Event, at time.Time) *recording {
	rec := &recording{isNew: map[string]bool{}}
	seen := make(map[string]bool, len(evs))
	var ids, types, outcomes []string
	var users []*string
	for i, ev := range evs {
		if seen[ev.SvixID] {
			continue
		}
		seen[ev.SvixID] = true
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
		rec.fresh = append(rec.fresh, i)
	}
	args := []any{ids, types, users, outcomes, at}
	if dialect == SQLite {
		rows := make([][4]*string, len(ids))
		for i := range ids {
			rows[i] = [4]*string{&ids[i], &types[i], users[i], &outcomes[i]}
		}
		b, _ := json.Marshal(rows) // strings and nils always encode
		args = []any{string(b), at}
	}
	r.add(statement{
		name: fmt.Sprintf("record %d events", len(ids)), sql: recordSQL[dialect], args: args,
		read: eachRow(func(rs rows) error {
			var id string
			if err := rs.Scan(&id); err != nil {
				return err
			}
			rec.isNew[id] = true
			return nil
		}),
	})
	return rec
}

// newEvents returns the indexes of the events the insert recorded, in
// order, and marks the others EventDuplicate: those recorded before, and
// repeats within the batch.
func (rec *recording) newEvents(evs []Event, res []EventResult) []int {
	var todo []int
	next := 0 // the next index in rec.fresh
	for i, ev := range evs {
		first := next < len(rec.fresh) && rec.fresh[next] == i
		if first {
			next++
		}
		if first && rec.isNew[ev.SvixID] {
			todo = append(todo, i)
			continue
		}
		res[i] = EventResult{Outcome: EventDuplicate}
	}
	return todo
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
	dialect := DialectOf(tx)
	fix := round{{name: "record outcomes", sql: staleSQL[dialect], args: []any{listArg(dialect, stale)}}}
	return fix.sendAtCommit(tx)
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
