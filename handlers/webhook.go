package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/labstack/echo/v4"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Verifier checks Svix signatures against every configured secret, so a
// secret can be rotated without dropping events.
type Verifier struct {
	hooks []*svix.Webhook
}

// NewVerifier parses the whsec_ secrets; a malformed one is an error.
func NewVerifier(secrets []string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no webhook signing secret")
	}
	v := &Verifier{}
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("webhook signing secret %d: %w", i+1, err)
		}
		v.hooks = append(v.hooks, wh)
	}
	return v, nil
}

// Verify accepts the body when any secret verifies it within Svix's
// five-minute timestamp tolerance.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	var err error
	for _, wh := range v.hooks {
		if err = wh.Verify(body, h); err == nil {
			return nil
		}
	}
	return err
}

// clerkWebhook answers a Svix delivery and counts it.
func (s *server) clerkWebhook(c echo.Context) error {
	ev, res, label, err := s.receiveWebhook(c)
	typ := ev.Type
	if typ == "" {
		typ = "unknown"
	}
	s.Metrics.WebhookEvents.WithLabelValues(typ, label).Inc()
	if res.Upsert != "" {
		s.Metrics.Upserts.WithLabelValues(string(models.SourceWebhook), string(res.Upsert)).Inc()
	}
	if err != nil {
		return err
	}
	c.Set(logOutcome, label)
	return c.JSON(http.StatusOK, map[string]models.EventOutcome{"outcome": res.Outcome})
}

// receiveWebhook reads the raw body, verifies it, and only then decodes and
// applies it. label is the outcome, or what stopped the delivery.
func (s *server) receiveWebhook(c echo.Context) (models.Event, models.EventResult, string, error) {
	var ev models.Event
	body, err := readBody(c, maxBody)
	if err != nil {
		return ev, models.EventResult{}, "unreadable", err
	}
	if err := s.Webhooks.Verify(body, c.Request().Header); err != nil {
		return ev, models.EventResult{}, "invalid_signature", fail(http.StatusBadRequest, "invalid webhook signature: "+err.Error(), nil)
	}
	svixID := messageID(c.Request().Header)
	c.Set(logSvixID, svixID)
	ev, err = decodeEvent(svixID, body)
	if err != nil {
		return ev, models.EventResult{}, "invalid_event", fail(http.StatusBadRequest, err.Error(), nil)
	}
	c.Set(logUserID, ev.UserID)
	c.Set(logEventType, ev.Type)

	ctx, cancel := context.WithTimeout(c.Request().Context(), DBTimeout)
	defer cancel()
	res, err := s.events.Submit(ctx, ev)
	if err != nil {
		return ev, res, "error", dbUnavailable(err)
	}
	return ev, res, string(res.Outcome), nil
}

// decodeEvent turns a verified body into the models' Event.
func decodeEvent(svixID string, body []byte) (models.Event, error) {
	ce, err := clerkapi.ParseEvent(body)
	if err != nil {
		return models.Event{}, err
	}
	ev := models.Event{SvixID: svixID, Type: ce.Type, UserID: ce.UserID}
	switch ce.Type {
	case "user.created", "user.updated":
		snap, err := ce.Snapshot()
		if err != nil {
			return models.Event{}, err
		}
		ev.Kind, ev.Snapshot = models.EventUpsert, snap
	case "user.deleted":
		ev.Kind = models.EventDelete
	default:
		return decodeOrgEvent(ev, ce)
	}
	return ev, nil
}

// messageID is the Svix message id; the svix library also accepts the
// Standard Webhooks names.
func messageID(h http.Header) string {
	if id := h.Get("svix-id"); id != "" {
		return id
	}
	return h.Get("webhook-id")
}

// readBody reads at most limit bytes; a larger body is answered 413.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit), nil)
	case err != nil:
		return nil, fail(http.StatusBadRequest, "could not read request body", err)
	}
	return body, nil
}
