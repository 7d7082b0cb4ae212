package clerkapi

import (
	jsonv1 "encoding/json"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
)

// Clerk objects built rather than received: the sample event of `usersync
// webhook send`, the load tool's events and the fake Backend API's users
// (clerktest). They are the SDK's types, encoded with encoding/json as the
// SDK's tags mean, so what they send is shaped as Clerk's own.

// NewUser is a Clerk user object like Clerk's documented example: created
// and updated at updatedAt (ms), an image, empty metadata and, when email
// is not "", one verified primary email address. Set other fields (names,
// username, phone numbers…) on the result.
func NewUser(id string, updatedAt int64, email string) *clerk.User {
	empty := jsonv1.RawMessage(`{}`)
	u := &clerk.User{
		Object: "user", ID: id, ImageURL: clerk.String("https://img.clerk.com/" + id), HasImage: true,
		EmailAddresses: []*clerk.EmailAddress{}, PhoneNumbers: []*clerk.PhoneNumber{},
		Web3Wallets: []*clerk.Web3Wallet{}, Passkeys: []*clerk.Passkey{},
		ExternalAccounts: []*clerk.ExternalAccount{}, SAMLAccounts: []*clerk.SAMLAccount{},
		EnterpriseAccounts: []*clerk.EnterpriseAccount{},
		PublicMetadata:     empty, PrivateMetadata: empty, UnsafeMetadata: empty,
		DeleteSelfEnabled: true, CreateOrganizationEnabled: true,
		CreatedAt: updatedAt, UpdatedAt: updatedAt,
	}
	if email != "" {
		eid := "idn_" + id
		u.PrimaryEmailAddressID = &eid
		u.EmailAddresses = []*clerk.EmailAddress{{
			ID: eid, Object: "email_address", EmailAddress: email,
			Verification: &clerk.Verification{Object: "verification_otp", Status: "verified", Strategy: "email_code"},
			LinkedTo:     []*clerk.LinkedIdentification{}, CreatedAt: updatedAt, UpdatedAt: updatedAt,
		}}
	}
	return u
}

// DeletedUser is the data of a user.deleted event.
func DeletedUser(id string) *clerk.DeletedResource {
	return &clerk.DeletedResource{Object: "user", ID: id, Deleted: true}
}

// webhookEvent is Clerk's webhook event envelope.
type webhookEvent struct {
	Object     string `json:"object"`
	Type       string `json:"type"`
	InstanceID string `json:"instance_id,omitempty"`
	Timestamp  int64  `json:"timestamp"` // ms
	Data       any    `json:"data"`
}

// EventJSON is the body Clerk sends for an event of type typ about data (a
// user from NewUser, a DeletedUser…) at at; instance is its instance_id,
// "" for none.
func EventJSON(typ, instance string, at time.Time, data any) ([]byte, error) {
	return jsonv1.Marshal(webhookEvent{Object: "event", Type: typ, InstanceID: instance, Timestamp: at.UnixMilli(), Data: data})
}
