// Package handlers is usersync's HTTP surface: routes, the Clerk webhook,
// health checks, middleware and the one place errors become statuses.
package handlers

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"
	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/metrics"
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

	syncPath = "/api/user/sync"

	// Concurrent webhook deliveries share transactions (see batcher): up to
	// maxEventBatch events each, eventWorkers transactions at once. With one,
	// everything that arrives while a batch commits forms the next, so
	// batches grow with the load; two or four measured the same throughput
	// on the bench machine, within its noise, and up to a third more
	// Postgres CPU per event (bench/README.md).
	maxEventBatch = 64
	eventWorkers  = 1

	// Concurrent login-time syncs share their row reads the same way (see
	// profileReader), up to maxProfileRead users per read, profileReaders
	// reads at once. One at a time measured the same logins per second as
	// two and a third less Postgres CPU per login (bench/README.md).
	maxProfileRead = 64
	profileReaders = 1
)

// Default per-user limit of /api/user/sync: a burst of syncBurst calls,
// then one per syncRefill. A frontend calls it once per session.
const (
	syncBurst  = 5
	syncRefill = 12 * time.Second
)

// Deps is what the handlers need; run builds it from the configuration.
type Deps struct {
	DB       *gorm.DB
	Log      *slog.Logger
	Webhooks *Verifier
	// Clerk and Sessions serve /api/user/sync; without them it answers 503.
	Clerk              *clerkapi.Client
	Sessions           *clerkapi.SessionVerifier
	SyncFreshness      time.Duration
	CORSAllowedOrigins []string
	// SyncRate and SyncBurst limit /api/user/sync per user (SYNC_RATE_LIMIT);
	// zero means one call per syncRefill after a burst of syncBurst, and
	// rate.Inf means no limit.
	SyncRate  rate.Limit
	SyncBurst int
	// BodyBudget is the most request body bytes held at once; zero means
	// 64 MiB. Tests set it smaller so that filling it is quick.
	BodyBudget int64
	// Metrics receives the counters; nil gets a registry of its own. A nil
	// Log discards.
	Metrics *metrics.Metrics
}

type server struct {
	Deps
	events      *batcher
	profiles    *profileReader
	syncLimiter *middleware.RateLimiterMemoryStore
	confirmed   *confirmations
	bodies      *bodyBudget
	instance    instanceGuard
}

// New returns the HTTP handler with every route and middleware in place.
func New(d Deps) *echo.Echo {
	if d.Metrics == nil {
		d.Metrics = metrics.New("dev")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.BodyBudget == 0 {
		d.BodyBudget = bodyBudgetBytes
	}
	if d.SyncRate == 0 {
		d.SyncRate, d.SyncBurst = rate.Every(syncRefill), syncBurst
	}
	s := &server{
		Deps:     d,
		events:   newBatcher(d.DB, maxEventBatch, eventWorkers, DBTimeout),
		profiles: newProfileReader(d.DB, maxProfileRead, profileReaders),
		syncLimiter: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: d.SyncRate, Burst: d.SyncBurst, ExpiresIn: 5 * time.Minute,
		}),
		confirmed: newConfirmations(),
		bodies:    newBodyBudget(d.BodyBudget),
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError

	// The chain every request passes is kept short: no body limit (the two
	// routes that read a body bound it themselves), no timeout context (the
	// webhook bounds its database work with DBTimeout; only the login sync,
	// which calls Clerk, gets RequestTimeout), request ids from a counter.
	e.Pre(dropBadRequestID)
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{Generator: newRequestIDs()}))
	e.Use(s.logRequests())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableErrorHandler: true, // logRequests answers the returned error
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("panic", "request_id", requestID(c), "err", err, "stack", string(stack))
			return err
		},
	}))
	if len(d.CORSAllowedOrigins) > 0 {
		// Only the login-time sync is called from browsers. With no origins
		// configured there are no CORS headers at all (Echo's default is "*").
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			Skipper: func(c echo.Context) bool { return c.Request().URL.Path != syncPath },
			// Exact comparison only: Echo would read '*' and '?' in
			// AllowOrigins as patterns and allow any matching origin.
			AllowOriginFunc: func(origin string) (bool, error) {
				return slices.Contains(d.CORSAllowedOrigins, origin), nil
			},
			AllowMethods:     []string{http.MethodPost, http.MethodOptions},
			AllowHeaders:     []string{echo.HeaderAuthorization, echo.HeaderContentType},
			AllowCredentials: true, // the __session cookie path
			// Without these a cross-origin page cannot read how long to wait
			// after a 429, or the id to quote in a bug report.
			ExposeHeaders: []string{"Retry-After", echo.HeaderXRequestID},
			MaxAge:        600,
		}))
	}

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))
	e.POST("/api/webhooks/clerk", s.clerkWebhook)
	e.POST(syncPath, s.syncUser, middleware.ContextTimeout(RequestTimeout))
	return e
}
