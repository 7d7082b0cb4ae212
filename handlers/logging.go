package handlers

import (
	"crypto/rand"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

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

// quietRoutes are polled by orchestrators and scrapers: their request
// lines are logged at debug level only.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// logRequests writes one line per request once it is answered, and times
// it for the latency histogram.
func (s *server) logRequests() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			c.Set(connContext, c.Request().Context())
			err := next(c)
			if err != nil {
				c.Error(err) // answer now, so the status below is the one sent
			}
			took := time.Since(start)
			s.Metrics.ObserveHTTP(c.Path(), c.Request().Method, c.Response().Status, took)
			level := slog.LevelInfo
			if quietRoutes[c.Path()] && c.Response().Status < 500 {
				level = slog.LevelDebug
			}
			if !s.Log.Enabled(c.Request().Context(), level) {
				return nil
			}
			attrs := []slog.Attr{
				slog.String("request_id", requestID(c)),
				slog.String("method", clip(c.Request().Method)),
				slog.String("route", clip(c.Path())),
				slog.Int("status", c.Response().Status),
				slog.Float64("latency_ms", float64(took.Microseconds())/1000),
			}
			for _, k := range []string{logSvixID, logUserID, logEventType, logOutcome} {
				if v, ok := c.Get(k).(string); ok && v != "" {
					attrs = append(attrs, slog.String(k, clip(v)))
				}
			}
			s.Log.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		}
	}
}

// maxLogValue is the most of an attacker-chosen value a log line carries.
const maxLogValue = 128

// clip cuts s to maxLogValue bytes (on a rune boundary), marking the cut.
func clip(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	cut := maxLogValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// dropBadRequestID discards an incoming X-Request-Id that is too long or
// holds characters other than letters, digits, '-', '_' and '.', so a
// fresh one is generated instead of copying client input into the logs.
func dropBadRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !validRequestID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func validRequestID(id string) bool {
	if len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// newRequestIDs returns a generator of request ids: a random prefix per
// process and a counter, unique without reading crypto/rand per request.
func newRequestIDs() func() string {
	prefix := rand.Text()[:12] + "-"
	var n atomic.Uint64
	return func() string {
		return prefix + strconv.FormatUint(n.Add(1), 36)
	}
}
