// Package clerkapi turns what Clerk sends (webhook events, Backend API user
// objects) into the models' Snapshot, the only shape the users table accepts.
package clerkapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotClerkEvent is returned for a body that is not a Clerk event.
var ErrNotClerkEvent = errors.New("not a Clerk event")

// Event is the envelope of a Clerk webhook event.
type Event struct {
	Type   string
	UserID string          // data.id
	Data   json.RawMessage // data, byte for byte as Clerk sent it
}

// envelope is the part of Clerk's event JSON that routing needs.
type envelope struct {
	Type *string         `json:"type"`
	Data json.RawMessage `json:"data"`
}

// ParseEvent decodes a verified webhook body. It requires a JSON object with
// a string "type" and a "data" object with a non-empty string "id".
func ParseEvent(body []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, fmt.Errorf("%w: invalid JSON", ErrNotClerkEvent)
	}
	if env.Type == nil || *env.Type == "" {
		return Event{}, fmt.Errorf("%w: no type", ErrNotClerkEvent)
	}
	var data struct {
		ID string `json:"id"`
	}
	if !isObject(env.Data) || json.Unmarshal(env.Data, &data) != nil || data.ID == "" {
		return Event{}, fmt.Errorf("%w: no data.id", ErrNotClerkEvent)
	}
	return Event{Type: *env.Type, UserID: data.ID, Data: env.Data}, nil
}

func isObject(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '{'
}
