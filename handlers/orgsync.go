package handlers

import (
	"context"
	"time"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// syncMemberships is the login-time part of contract section 7: every page
// of the user's memberships from Clerk, applied with their organizations,
// and the user's live memberships Clerk no longer lists tombstoned, in one
// transaction. Nothing is written when nothing changed (rule 7).
func (s *server) syncMemberships(ctx context.Context, userID string) error {
	started := time.Now()
	mems, err := s.Clerk.ListUserMemberships(ctx, userID)
	if err != nil {
		return clerkFailed(err)
	}
	keep := make(map[string]bool, len(mems))
	var changes []models.OrgChange
	for _, m := range mems {
		keep[m.ID] = true
		changes = append(changes, models.MembershipChanges(models.ApplyMembership, m)...)
	}
	changes = append(changes, models.OrgChange{
		Kind: models.PruneMemberships, UserID: userID, Keep: keep, Before: clerkapi.ListedBefore(started),
	})
	ctx, cancel := context.WithTimeout(ctx, DBTimeout)
	defer cancel()
	if _, err := models.ApplyOrgChanges(ctx, s.DB, changes, models.SourceLogin); err != nil {
		return dbUnavailable(err)
	}
	return nil
}
