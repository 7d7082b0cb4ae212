package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/labstack/echo/v4"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Verifier checks Svix signatures against every configured secret, so a
// secret can be rotated without dropping events.
type Verifier struct {
	hooks []*svix.Webhook
	// Development is set when the one secret is the development secret
	// serve made because CLERK_WEBHOOK_SIGNING_SECRET is unset: a refused
	// signature then says how to set the real one.
	Development bool
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

// devSecretHint follows a refused signature while the service verifies
// with its development secret: Clerk's real events cannot match it.
const devSecretHint = "; this service verifies with its development secret: set CLERK_WEBHOOK_SIGNING_SECRET " +
	"to the endpoint's Signing Secret (Clerk Dashboard → Webhooks) and restart"

// maxMessageID is the longest message id accepted; Svix's are about 30 bytes.
const maxMessageID = 255

// errBadMessageID refuses an id that is too long or not visible ASCII.
var errBadMessageID = errors.New("invalid webhook message id")

// Verify accepts the body when any secret verifies it within Svix's
// five-minute timestamp tolerance, and returns the message id that the
// signature covered. The header family (svix-* or the Standard Webhooks
// webhook-*) is chosen here, as the svix library chooses it, and only that
// family is handed to the library, so the id returned is always the signed
// one, never another header beside it.
func (v *Verifier) Verify(body []byte, h http.Header) (string, error) {
	id, only := signedHeaders(h)
	if id != "" && !validMessageID(id) {
		return "", errBadMessageID
	}
	var err error
	for _, wh := range v.hooks {
		if err = wh.Verify(body, only); err == nil {
			return id, nil
		}
	}
	return "", err
}

// signedHeaders picks the first complete family of id, timestamp and
// signature headers and returns its id and the three headers under the
// svix-* names; with no complete family both are empty.
func signedHeaders(h http.Header) (string, http.Header) {
	for _, prefix := range []string{"svix-", "webhook-"} {
		id, ts, sig := h.Get(prefix+"id"), h.Get(prefix+"timestamp"), h.Get(prefix+"signature")
		if id != "" && ts != "" && sig != "" {
			return id, http.Header{"Svix-Id": {id}, "Svix-Timestamp": {ts}, "Svix-Signature": {sig}}
		}
	}
	return "", http.Header{}
}

// validMessageID accepts ids of at most maxMessageID bytes of visible ASCII:
// the id is a primary key and is logged, so nothing else gets that far.
func validMessageID(id string) bool {
	if len(id) > maxMessageID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
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
	c.Set(logOutcome, label) // on failure, what stopped the delivery: "invalid_signature", …
	if err != nil {
		return err
	}
	if res.Outcome == models.EventApplied {
		s.Metrics.WebhookLastApplied.SetToCurrentTime()
	}
	return c.JSONBlob(http.StatusOK, outcomeBody(res.Outcome))
}

// receiveWebhook reads the raw body, verifies it, and only then decodes and
// applies it. label is the outcome, or what stopped the delivery.
func (s *server) receiveWebhook(c echo.Context) (models.Event, models.EventResult, string, error) {
	var ev models.Event
	body, release, err := s.readBody(c, maxBody)
	defer release()
	if err != nil {
		return ev, models.EventResult{}, "unreadable", err
	}
	svixID, err := s.Webhooks.Verify(body, c.Request().Header)
	if errors.Is(err, errBadMessageID) {
		return ev, models.EventResult{}, "invalid_signature", fail(http.StatusBadRequest, err.Error(), nil)
	}
	if err != nil {
		// The svix library's errors are short fixed texts, safe to answer.
		msg := "invalid webhook signature: " + err.Error()
		if s.Webhooks.Development {
			msg += devSecretHint
		}
		return ev, models.EventResult{}, "invalid_signature", fail(http.StatusBadRequest, msg, nil)
	}
	c.Set(logSvixID, svixID)
	ev, instance, err := clerkapi.DecodeEvent(svixID, body)
	if err != nil {
		return ev, models.EventResult{}, "invalid_event", fail(http.StatusBadRequest, eventErrorMessage(err), err)
	}
	c.Set(logUserID, ev.UserID)
	c.Set(logEventType, ev.Type)
	if err := ev.CheckClock(time.Now()); err != nil { // rule 11; not recorded, as other 400s
		return ev, models.EventResult{}, "future_timestamp", fail(http.StatusBadRequest, "updated_at is more than 24h in the future", err)
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), DBTimeout)
	defer cancel()
	if instance != "" {
		foreign, bound, err := s.instance.check(ctx, s.DB, instance)
		if err != nil {
			return ev, models.EventResult{}, "error", dbUnavailable(err)
		}
		if foreign { // recorded, applied to nothing, answered 409 at every delivery
			if err := models.RecordEvent(ctx, s.DB, ev, models.EventForeignInstance); err != nil {
				return ev, models.EventResult{}, "error", dbUnavailable(err)
			}
			return ev, models.EventResult{}, string(models.EventForeignInstance), errForeignInstance(instance, bound)
		}
	}
	res, err := s.events.Submit(ctx, ev)
	if err != nil {
		return ev, res, "error", dbUnavailable(err)
	}
	return ev, res, string(res.Outcome), nil
}

// eventErrorMessage is the short answer to a signed body that is not a
// usable Clerk event; the decoder's own text is logged, never sent.
func eventErrorMessage(err error) string {
	var unstorable *clerkapi.UnstorableError
	switch {
	case errors.As(err, &unstorable):
		return "value cannot be stored: " + unstorable.Error() // a field name and a fixed text
	case errors.Is(err, clerkapi.ErrInvalidUser):
		return "invalid Clerk user object"
	case errors.Is(err, clerkapi.ErrNotClerkEvent):
		return err.Error() // DecodeEvent's own fixed texts
	}
	return "invalid Clerk event"
}

// outcomeBodies are the 200 answers, encoded once (as c.JSON would).
var outcomeBodies = map[models.EventOutcome][]byte{
	models.EventApplied:   encodeOutcome(models.EventApplied),
	models.EventStale:     encodeOutcome(models.EventStale),
	models.EventDuplicate: encodeOutcome(models.EventDuplicate),
	models.EventIgnored:   encodeOutcome(models.EventIgnored),
}

func outcomeBody(o models.EventOutcome) []byte {
	if b, ok := outcomeBodies[o]; ok {
		return b
	}
	return encodeOutcome(o)
}

func encodeOutcome(o models.EventOutcome) []byte {
	return []byte(`{"outcome":"` + string(o) + `"}` + "\n") // outcomes are plain words: nothing to escape
}
