package handlers

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// Context keys a handler sets so the request log line can name what it did.
// Only ids and outcomes: never emails, names, tokens or payloads.
const (
	logSvixID    = "svix_id"
	logUserID    = "user_id"
	logEventType = "event_type"
	logOutcome   = "outcome"
)

// logRequests writes one line per request once it is answered.
func (s *server) logRequests() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // answer now, so the status below is the one sent
			}
			attrs := []slog.Attr{
				slog.String("request_id", requestID(c)),
				slog.String("method", c.Request().Method),
				slog.String("route", c.Path()),
				slog.Int("status", c.Response().Status),
				slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
			}
			for _, k := range []string{logSvixID, logUserID, logEventType, logOutcome} {
				if v, ok := c.Get(k).(string); ok && v != "" {
					attrs = append(attrs, slog.String(k, v))
				}
			}
			s.Log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
			return nil
		}
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
