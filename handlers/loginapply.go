package handlers

import (
	"context"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// applyLogin applies what a login-time sync fetched in one transaction: the
// user's snapshot, every page of the user's memberships from Clerk with
// their organizations (contract section 7), and the user's live
// memberships Clerk no longer lists, tombstoned. Nothing is written when
// nothing changed (rule 7). It returns the user's outcome.
func (s *server) applyLogin(ctx context.Context, snap models.Snapshot) (models.Outcome, error) {
	started := time.Now()
	mems, err := s.Clerk.ListUserMemberships(ctx, snap.ID)
	if err != nil {
		return "", clerkFailed(err)
	}
	keep := make(map[string]bool, len(mems))
	changes := []models.Change{models.UserChange(snap)}
	for _, m := range mems {
		keep[m.ID] = true
		changes = append(changes, models.MembershipChanges(models.ApplyMembership, m)...)
	}
	changes = append(changes, models.Change{
		Kind: models.PruneMemberships, UserID: snap.ID, Keep: keep, Before: clerkapi.ListedBefore(started),
	})
	ctx, cancel := context.WithTimeout(ctx, DBTimeout)
	defer cancel()
	out, err := models.Apply(ctx, s.DB, changes, models.SourceLogin)
	if err != nil {
		return "", dbUnavailable(err)
	}
	s.Metrics.Upserts.WithLabelValues(string(models.SourceLogin), string(out[0])).Inc()
	if out[0] == models.Gone {
		return "", errGone
	}
	return out[0], nil
}
