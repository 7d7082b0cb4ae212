// Package handlers is usersync's HTTP surface: routes, the Clerk webhook,
// health checks, middleware and the one place errors become statuses.
package handlers

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"gorm.io/gorm"
)

// Limits that apply to every request.
const (
	// RequestTimeout bounds a whole request, well under Svix's 15 s.
	RequestTimeout = 10 * time.Second
	// DBTimeout bounds the database work of one request, so a hung statement
	// is answered 503 (and retried by Svix) rather than timing Svix out.
	DBTimeout = 5 * time.Second
	// maxBody is the largest body any route reads.
	maxBody = 1 << 20
)

// Deps is what the handlers need; run builds it from the configuration.
type Deps struct {
	DB       *gorm.DB
	Log      *slog.Logger
	Webhooks *Verifier
}

type server struct {
	Deps
}

// New returns the HTTP handler with every route and middleware in place.
func New(d Deps) *echo.Echo {
	s := &server{Deps: d}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError

	e.Use(middleware.RequestID())
	e.Use(s.logRequests())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableErrorHandler: true, // logRequests answers the returned error
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("panic", "request_id", requestID(c), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(middleware.BodyLimit("1MiB")) // a guard for every route; handlers may read less
	e.Use(middleware.ContextTimeout(RequestTimeout))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.POST("/api/webhooks/clerk", s.clerkWebhook)
	return e
}
