// Package clerkapi turns what Clerk sends (webhook events, Backend API user
// objects) into the models' Snapshot, the only shape the users table accepts.
package clerkapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/usersync/usersync/models"
)

// ErrNotClerkEvent is returned for a body that is not a Clerk event.
var ErrNotClerkEvent = errors.New("not a Clerk event")

// Event is the envelope of a Clerk webhook event.
type Event struct {
	Type   string
	UserID string          // data.id
	Data   json.RawMessage // data, byte for byte as Clerk sent it

	user    clerkUser // data decoded as a user, when it is one
	userErr error     // why data is not a user
}

// envelope is the part of Clerk's event JSON that routing needs.
type envelope struct {
	Type *string   `json:"type"`
	Data eventData `json:"data"`
}

// eventData keeps data's bytes and decodes them as a user in the same pass
// over the body (decoding a webhook is most of its CPU cost).
type eventData struct {
	raw     json.RawMessage
	user    clerkUser
	userErr error
}

func (d *eventData) UnmarshalJSON(b []byte) error {
	d.raw = append(json.RawMessage(nil), b...)
	if !isObject(b) {
		return nil
	}
	d.userErr = json.Unmarshal(b, &d.user)
	return nil
}

// ParseEvent decodes a verified webhook body. It requires a JSON object with
// a string "type" and a "data" object with a non-empty string "id".
//
// A body that is not valid UTF-8, or whose type or data.id holds a control
// character, is refused: Postgres would refuse to store it, and a delivery
// it refuses is retried for days instead of being answered 400 once.
func ParseEvent(body []byte) (Event, error) {
	if !utf8.Valid(body) {
		return Event{}, fmt.Errorf("%w: body is not valid UTF-8", ErrNotClerkEvent)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, fmt.Errorf("%w: invalid JSON", ErrNotClerkEvent)
	}
	if env.Type == nil || *env.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrNotClerkEvent)
	}
	ev := Event{Type: *env.Type, Data: env.Data.raw, user: env.Data.user, userErr: env.Data.userErr}
	ev.UserID = ev.user.ID
	if ev.userErr != nil && isObject(ev.Data) {
		// Not shaped like a user (another kind of object): read just its id.
		var data struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(ev.Data, &data) == nil {
			ev.UserID = data.ID
		}
	}
	if ev.UserID == "" {
		return Event{}, fmt.Errorf("%w: no data.id", ErrNotClerkEvent)
	}
	if hasControl(ev.Type) || hasControl(ev.UserID) {
		return Event{}, fmt.Errorf("%w: control character in type or data.id", ErrNotClerkEvent)
	}
	return ev, nil
}

// Snapshot maps the event's data, a Clerk user object, to a snapshot.
func (e Event) Snapshot() (models.Snapshot, error) {
	if e.userErr != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %v", ErrInvalidUser, e.userErr)
	}
	return snapshotOf(&e.user, e.Data), nil
}

// hasControl reports a C0 control character (NUL among them) or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func isObject(raw []byte) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) > 0 && trimmed[0] == '{'
}
