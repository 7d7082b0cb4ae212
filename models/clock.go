package models

import (
	"fmt"
	"math"
	"time"
)

// MaxClockSkew is how far ahead of the service's clock a Clerk updated_at
// may lie and still order snapshots (rule 11). Beyond it one mistaken
// timestamp would make every later snapshot stale until deletion.
const MaxClockSkew = 24 * time.Hour

// FutureBound is the latest updated_at (ms since the epoch) trusted at now.
func FutureBound(now time.Time) int64 { return now.Add(MaxClockSkew).UnixMilli() }

// orderBound is the largest clerk_updated_at of a row that still outranks
// a snapshot from src (rule 11). The Backend API paths overwrite a row
// dated beyond FutureBound; a webhook never does, since its own snapshot
// could be just as wrong.
func orderBound(src Source, at time.Time) int64 {
	if src == SourceWebhook {
		return math.MaxInt64
	}
	return FutureBound(at)
}

// CheckClock reports, naming the object and its id, a snapshot the event
// would apply whose updated_at lies beyond FutureBound(now): a webhook
// refuses such an event whole (rule 11). A deletion's own updated_at is not
// read, since deletion is final whatever it says (rules 5 and 9); the
// organization a membership deletion carries is applied, so it is.
func (ev Event) CheckClock(now time.Time) error {
	bound := FutureBound(now)
	check := func(object, id string, at int64) error {
		if at > bound {
			return fmt.Errorf("%s %s: updated_at %d is more than %gh ahead of the clock", object, id, at, MaxClockSkew.Hours())
		}
		return nil
	}
	var err error
	switch ev.Kind {
	case EventUpsert:
		err = check("user", ev.Snapshot.ID, ev.Snapshot.UpdatedAt)
	case EventOrgUpsert:
		err = check("organization", ev.Org.ID, ev.Org.UpdatedAt)
	case EventMembershipUpsert:
		err = check("membership", ev.Membership.ID, ev.Membership.UpdatedAt)
	}
	if org := ev.Membership.Org; err == nil && org != nil {
		err = check("organization", org.ID, org.UpdatedAt)
	}
	return err
}
