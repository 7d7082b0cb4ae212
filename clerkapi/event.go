// Package clerkapi turns what Clerk sends (webhook events, Backend API user
// objects) into the models' Snapshot, the only shape the users table accepts.
// It decodes with encoding/json/v2 (github.com/go-json-experiment/json, which
// aliases the standard library's from Go 1.27), about three times faster than
// encoding/json on a Clerk user, with v1's leniency (see decodeOptions).
package clerkapi

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/usersync/usersync/models"
)

// ErrNotClerkEvent is returned for a body that is not a Clerk event.
var ErrNotClerkEvent = errors.New("not a Clerk event")

// Event is the envelope of a Clerk webhook event.
type Event struct {
	Type   string
	UserID string         // data.id
	Data   jsontext.Value // data, byte for byte as Clerk sent it

	user    clerkUser // data decoded as a user, when it is one
	userErr error     // why data is not a user
}

// decodeOptions accept what encoding/json accepted: a lone surrogate escape
// or invalid UTF-8 (a user can put either in their own metadata; storable
// repairs it for raw_json) and a repeated name (the last wins).
var decodeOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))

// envelope is the part of Clerk's event JSON that routing needs.
type envelope struct {
	Type *string        `json:"type"`
	Data jsontext.Value `json:"data"`
}

// ParseEvent decodes a verified webhook body. It requires a JSON object with
// a string "type" and a "data" object with a non-empty string "id". Only
// the fields the rules need are decoded (see clerkUser); the rest of data
// is kept as bytes for raw_json.
//
// A body that is not valid UTF-8, or whose type or data.id holds a control
// character, is refused: Postgres would refuse to store it, and a delivery
// it refuses is retried for days instead of being answered 400 once.
func ParseEvent(body []byte) (Event, error) {
	if !utf8.Valid(body) {
		return Event{}, fmt.Errorf("%w: body is not valid UTF-8", ErrNotClerkEvent)
	}
	var env envelope
	if err := json.Unmarshal(body, &env, decodeOptions); err != nil {
		return Event{}, fmt.Errorf("%w: invalid JSON", ErrNotClerkEvent)
	}
	if env.Type == nil || *env.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrNotClerkEvent)
	}
	ev := Event{Type: *env.Type, Data: env.Data}
	if env.Data.Kind() == '{' {
		ev.userErr = json.Unmarshal(env.Data, &ev.user, decodeOptions)
		ev.UserID = ev.user.ID
	}
	if ev.userErr != nil {
		// Not shaped like a user (another kind of object): read just its id.
		var data struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(ev.Data, &data, decodeOptions) == nil {
			ev.UserID = data.ID
		}
	}
	if ev.UserID == "" {
		return Event{}, fmt.Errorf("%w: no data.id", ErrNotClerkEvent)
	}
	if hasControl(ev.Type) || hasControl(ev.UserID) {
		return Event{}, fmt.Errorf("%w: control character in type or data.id", ErrNotClerkEvent)
	}
	if len(ev.UserID) > maxIDBytes {
		return Event{}, fmt.Errorf("%w: data.id is longer than %d bytes", ErrNotClerkEvent, maxIDBytes)
	}
	return ev, nil
}

// Snapshot maps the event's data, a Clerk user object, to a snapshot.
func (e Event) Snapshot() (models.Snapshot, error) {
	if e.userErr != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %v", ErrInvalidUser, e.userErr)
	}
	s := snapshotOf(&e.user, e.Data)
	if err := checkUser(s); err != nil {
		return models.Snapshot{}, fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	return s, nil
}

// hasControl reports a C0 control character (NUL among them) or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
