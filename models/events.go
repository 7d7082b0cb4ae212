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
	return inTx(ctx, db, false, func(s session) ([]EventResult, error) {
		return processBatch(ctx, s, evs, now())
	})
}

// processBatch records the events (which finds the duplicates) in the run
// that locks and reads what every event of the batch touches, applies the
// new ones, and corrects, with the writes, the outcomes recorded as
// "applied" that turned out otherwise.
func processBatch(ctx context.Context, s session, evs []Event, at time.Time) ([]EventResult, error) {
	res := make([]EventResult, len(evs))
	asked := make([][]Change, len(evs)) // each event's changes
	var reach []Change
	for i, ev := range evs {
		asked[i] = ev.changes()
		reach = append(reach, asked[i]...)
	}
	rec := recordEvents(s.dialect(), evs, at)
	st := newState(SourceWebhook, at)
	if err := lockAndRead(ctx, s, st, keysOf(reach), rec.step); err != nil {
		return nil, err
	}
	todo := rec.newEvents(evs, res)
	var changes []Change
	var from []int // from[j] is the index in evs of changes[j]
	for _, i := range todo {
		if len(asked[i]) == 0 {
			res[i] = EventResult{Outcome: EventIgnored}
		}
		for _, c := range asked[i] {
			changes, from = append(changes, c), append(from, i)
		}
	}
	for j, o := range st.decide(changes) {
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
	return res, write(ctx, s, st, fixOutcomes(s.dialect(), evs, todo, res)...)
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

// recording is the insert of a batch's svix ids and, once its step has
// run, which of them it inserted.
type recording struct {
	step  *step
	fresh []int           // the batch's events, a repeated svix id only at its first
	isNew map[string]bool // the svix ids inserted
}

// recordEvents is the insert of a webhook_events row per new svix id,
// recording events as "applied" (or "ignored") for now.
func recordEvents(d Dialect, evs []Event, at time.Time) *recording {
	rec := &recording{isNew: make(map[string]bool, len(evs))}
	seen := make(map[string]bool, len(evs))
	for i, ev := range evs {
		if !seen[ev.SvixID] {
			seen[ev.SvixID] = true
			rec.fresh = append(rec.fresh, i)
		}
	}
	// Inserted in svix id order: two batches holding the same messages in
	// other orders then wait for each other instead of deadlocking.
	byID := slices.Clone(rec.fresh)
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
	args := []any{ids, types, users, outcomes, at}
	if d == SQLite {
		rows := make([][4]*string, len(ids))
		for i := range ids {
			rows[i] = [4]*string{&ids[i], &types[i], users[i], &outcomes[i]}
		}
		b, _ := json.Marshal(rows) // strings and nils always encode
		args = []any{string(b), at}
	}
	rec.step = &step{what: fmt.Sprintf("record %d events", len(ids)), sql: recordSQL[d], args: args,
		row: func(scan func(...any) error) error {
			var id string
			err := scan(&id)
			rec.isNew[id] = true
			return err
		}}
	return rec
}

// newEvents returns the indexes of the events the insert recorded, in
// order, and marks the others EventDuplicate: those recorded before, and
// repeats within the batch.
func (rec *recording) newEvents(evs []Event, res []EventResult) []int {
	var todo []int
	for i := range res {
		res[i] = EventResult{Outcome: EventDuplicate}
	}
	for _, i := range rec.fresh {
		if rec.isNew[evs[i].SvixID] {
			todo, res[i] = append(todo, i), EventResult{}
		}
	}
	return todo
}

// fixOutcomes is the rewrite of the recorded outcome of events that were
// not applied; none when every one was.
func fixOutcomes(d Dialect, evs []Event, todo []int, res []EventResult) []*step {
	var stale []string
	for _, i := range todo {
		if res[i].Outcome == EventStale {
			stale = append(stale, evs[i].SvixID)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return []*step{{what: fmt.Sprintf("record %d outcomes", len(stale)), sql: staleSQL[d], args: []any{listArg(d, stale)}}}
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
