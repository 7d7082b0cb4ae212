package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// apiError is an error with the status and message the client sees; cause
// is logged for 5xx and never sent.
type apiError struct {
	status  int
	message string
	cause   error
	quiet   bool // a 5xx logged as a warning: expected while a dependency is held off
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.message, e.cause)
	}
	return fmt.Sprintf("%d %s", e.status, e.message)
}

func (e *apiError) Unwrap() error { return e.cause }

func fail(status int, message string, cause error) error {
	return &apiError{status: status, message: message, cause: cause}
}

// dbUnavailable is the answer to any database failure: 503, so Svix and
// clients retry; the cause is logged, never sent.
func dbUnavailable(cause error) error {
	return fail(http.StatusServiceUnavailable, "database unavailable, retry later", cause)
}

// handleError is Echo's HTTPErrorHandler: every error becomes
// {"error": message} with its status here and nowhere else.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, message := statusOf(err)
	if hungUp(c, err) {
		status = statusClientGone
	}
	var apiErr *apiError
	switch {
	case status == statusClientGone:
		// The client hung up; whatever failed after it, nothing was
		// committed for it and it will not read the answer.
		s.Log.Info("client went away", "request_id", requestID(c), "route", clip(c.Path()))
	case status >= 500 && errors.As(err, &apiErr) && apiErr.quiet:
		s.Log.Warn("request failed", "request_id", requestID(c), "route", clip(c.Path()), "status", status, "err", err)
	case status >= 500:
		s.Log.Error("request failed", "request_id", requestID(c), "route", clip(c.Path()), "status", status, "err", err)
	case errors.Unwrap(err) != nil:
		// A client mistake: the answer is short, the cause (often decoder
		// text about attacker-chosen input) is logged, cut to size.
		s.Log.Info("request refused", "request_id", requestID(c), "route", clip(c.Path()), "status", status, "err", clip(err.Error()))
	}
	if status == statusClientGone {
		c.Response().WriteHeader(status) // recorded for the metrics; nobody reads it
		return
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, map[string]string{"error": message})
	}
	if err != nil {
		s.Log.Error("write error response", "err", err)
	}
}

// statusClientGone is nginx's 499, recorded for a request whose client
// closed the connection before the answer: counted apart from 5xx, so the
// shipped alerts page only for what an operator must fix.
const statusClientGone = 499

// clientGone reports whether the client hung up. The login sync's own
// RequestTimeout ends its context with DeadlineExceeded instead, which is
// the service's failure, not the client's.
func clientGone(c echo.Context) bool {
	ctx := c.Request().Context()
	// The middleware that bounds the login sync has cancelled its own
	// context by the time the error is answered: ask the connection's.
	if conn, ok := c.Get(connContext).(context.Context); ok {
		ctx = conn
	}
	return errors.Is(ctx.Err(), context.Canceled)
}

// hungUp reports a failure that only a client hanging up explains: it
// would be a 5xx, and the client has gone. A 4xx stays what it is (a body
// cut off by its read deadline also cancels the request's context).
func hungUp(c echo.Context, err error) bool {
	status, _ := statusOf(err)
	return status >= 500 && clientGone(c)
}

// connContext keeps the request's context as the server gave it, before
// any middleware derives its own.
const connContext = "conn_context"

func statusOf(err error) (int, string) {
	var apiErr *apiError
	var httpErr *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
		return apiErr.status, apiErr.message
	case errors.As(err, &httpErr):
		if httpErr.Code == http.StatusRequestEntityTooLarge {
			return httpErr.Code, "request body too large"
		}
		if msg, ok := httpErr.Message.(string); ok {
			return httpErr.Code, msg
		}
		return httpErr.Code, http.StatusText(httpErr.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request timed out"
	}
	return http.StatusInternalServerError, "internal error"
}
