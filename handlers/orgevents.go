package handlers

import (
	"errors"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// decodeOrgEvent routes the organization and membership events (contract
// section 7); every other type, invitations, domains, roles and
// permissions included, is ignored and only recorded.
func decodeOrgEvent(ev models.Event, ce clerkapi.Event) (models.Event, error) {
	var err error
	switch ce.Type {
	case "organization.created", "organization.updated":
		ev.Kind = models.EventOrgUpsert
		ev.Org, err = ce.Organization()
	case "organization.deleted":
		// Clerk sends only {object, id, slug, deleted}.
		ev.Kind, ev.Org = models.EventOrgDelete, models.OrgSnapshot{ID: ce.UserID}
	case "organizationMembership.created", "organizationMembership.updated":
		ev.Kind = models.EventMembershipUpsert
		ev.Membership, err = ce.Membership()
	case "organizationMembership.deleted":
		// Clerk sends the whole membership; a payload without its
		// organization or user still deletes the id (rule 9).
		ev.Kind = models.EventMembershipDelete
		var unstorable *clerkapi.UnstorableError
		if ev.Membership, err = ce.Membership(); err != nil && !errors.As(err, &unstorable) {
			ev.Membership, err = models.MembershipSnapshot{ID: ce.UserID}, nil
		}
	default:
		ev.Kind = models.EventIgnore
		ev.UserID = "" // data.id of another kind of object is not a user id
	}
	if err != nil {
		return models.Event{}, err
	}
	return ev, nil
}
