package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/time/rate"
	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/handlers"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/retention"
)

// shutdownGrace is how long in-flight requests may take after SIGTERM.
const shutdownGrace = 15 * time.Second

const serveHelp = `Usage: usersync [serve]

Listens on $PORT (all interfaces) at once, waits for the database (until it
answers, /readyz and every route but /healthz answer 503), applies pending
migrations, then serves HTTP until SIGINT or SIGTERM; in-flight requests then
get up to 15 s to finish.
Routes: POST /api/webhooks/clerk, POST /api/user/sync, GET /healthz, GET /readyz,
GET /metrics.

With CLERK_SECRET_KEY set it checks that the key belongs to the Clerk instance
the database mirrors (exit 1 if not), and reconciles with Clerk: every
SYNC_RECONCILE_INTERVAL (5m) the users updated since the last pass, every
SYNC_FULL_RECONCILE_INTERVAL (24h) everything, with a capped prune.
`

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	startProfiler := profilerFlag(fs) // only in a build with -tags pprof
	if err := parseFlags(fs, args, stdout, serveHelp); err != nil {
		return err
	}
	cfg, log, err := setup(getenv, stderr)
	if err != nil {
		return err
	}
	srv, err := listen(cfg.Port, log) // answers 503 until the database is open
	if err != nil {
		return err
	}
	defer srv.close()
	db, err := waitForDB(ctx, cfg, log)
	if db == nil {
		return err // nil when SIGINT or SIGTERM came during the wait
	}
	defer models.Close(db) // last, after the server has drained
	secrets, err := webhookSecrets(cfg, log)
	if err != nil {
		return err
	}
	verifier, err := handlers.NewVerifier(secrets)
	if err != nil {
		return usageError{fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %v", err)}
	}
	verifier.Development = len(cfg.WebhookSecrets) == 0
	m := metrics.New(currentVersion())
	if sqlDB, err := db.DB(); err == nil {
		m.WatchDB(sqlDB, string(cfg.Database.Dialect))
	}
	defer startRetention(ctx, cfg, db, m, log)() // stops before the database closes
	deps := handlers.Deps{DB: db, Log: log, Webhooks: verifier, Metrics: m,
		SyncFreshness: cfg.SyncFreshness, CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		SyncRate: rate.Inf, SyncBurst: 1}
	if l := cfg.SyncRateLimit; l.Requests > 0 {
		deps.SyncRate, deps.SyncBurst = rate.Every(l.Per/time.Duration(l.Requests)), l.Requests
	}
	if deps.Clerk, deps.Sessions, err = clerkDeps(cfg, log, m); err != nil {
		return err
	}
	guard, err := checkInstanceAtStart(ctx, db, deps.Clerk, log)
	if err != nil {
		return err
	}
	defer startReconcile(ctx, cfg, db, deps.Clerk, guard, m, log)() // stops before the database closes
	startProfiler(log)
	setMemoryLimit(getenv, os.DirFS("/sys/fs/cgroup"), log)
	return srv.serve(ctx, handlers.New(deps))
}

// startRetention runs the webhook_events retention job in the background
// and returns a function that stops it and waits for it.
func startRetention(ctx context.Context, cfg config.Config, db *gorm.DB, m *metrics.Metrics, log *slog.Logger) func() {
	if cfg.WebhookEventsRetention == 0 {
		log.Info("WEBHOOK_EVENTS_RETENTION is 0: webhook_events rows are kept forever")
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	job := retention.Job{DB: db, Keep: cfg.WebhookEventsRetention, Metrics: m, Log: log}
	go func() {
		defer close(done)
		job.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// clerkDeps builds the Backend API client and session verifier for the
// login-time sync; without CLERK_SECRET_KEY both are nil and the route
// answers 503.
func clerkDeps(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*clerkapi.Client, *clerkapi.SessionVerifier, error) {
	if cfg.ClerkSecretKey == "" {
		log.Warn("CLERK_SECRET_KEY is not set: POST /api/user/sync answers 503 (it cannot fetch users from Clerk)")
		return nil, nil, nil
	}
	httpClient := &http.Client{Timeout: clerkapi.CallTimeout, Transport: m.ClerkTransport(http.DefaultTransport, clerkapi.Operation)}
	// One budget, one client per process: whatever else calls Clerk in
	// serve must use this client, so all calls share CLERK_API_RATE.
	apiRate := cfg.ClerkAPIRate
	budget := clerkapi.NewBudget(apiRate.Requests, apiRate.Per, m.ClerkThrottled.Inc)
	client := clerkapi.NewClient(cfg.ClerkAPIURL, cfg.ClerkSecretKey, httpClient, clerkapi.WithBudget(budget))
	log.Info("Clerk Backend API budget", "clerk_api_rate", fmt.Sprintf("%d/%s", apiRate.Requests, apiRate.Per))
	sessions, err := clerkapi.NewSessionVerifier(clerkapi.SessionConfig{
		JWTKey: cfg.ClerkJWTKey, Client: client, Issuer: cfg.Issuer, AuthorizedParties: cfg.AuthorizedParties,
	})
	if err != nil {
		return nil, nil, usageError{err}
	}
	if len(cfg.AuthorizedParties) == 0 {
		log.Warn("CLERK_AUTHORIZED_PARTIES is not set: session tokens from any origin (azp) are accepted")
	}
	if cfg.ClerkJWTKey == "" {
		log.Info("CLERK_JWT_KEY is not set: session keys are fetched from the Backend API JWKS and cached")
	}
	return client, sessions, nil
}

// setup loads the configuration and builds the logger, then logs the
// effective configuration with secrets masked.
func setup(getenv func(string) string, stderr io.Writer) (config.Config, *slog.Logger, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, nil, usageError{err}
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var handler slog.Handler = slog.NewJSONHandler(stderr, opts)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(stderr, opts)
	}
	log := slog.New(handler)
	log.Info("configuration",
		"database", describeDatabase(cfg.Database),
		"port", cfg.Port,
		"clerk_api_url", config.MaskURL(cfg.ClerkAPIURL),
		"clerk_secret_key_set", cfg.ClerkSecretKey != "",
		"clerk_jwt_key_set", cfg.ClerkJWTKey != "",
		"webhook_secrets", len(cfg.WebhookSecrets),
		"sync_freshness", cfg.SyncFreshness.String(),
		"webhook_events_retention", cfg.WebhookEventsRetention.String(),
		"cors_allowed_origins", cfg.CORSAllowedOrigins,
		"clerk_authorized_parties", cfg.AuthorizedParties,
	)
	return cfg, log, nil
}

// describeDatabase names the database without its password.
func describeDatabase(d config.Database) string {
	if d.Dialect == models.SQLite {
		return "sqlite:" + d.DSN
	}
	return config.MaskURL(d.DSN)
}

// webhookSecrets returns the configured secrets, or the development secret
// kept beside the embedded database (created on first use).
func webhookSecrets(cfg config.Config, log *slog.Logger) ([]string, error) {
	if len(cfg.WebhookSecrets) > 0 {
		return cfg.WebhookSecrets, nil
	}
	path := devSecretPath(cfg)
	secret, err := loadOrCreateDevSecret(path)
	if err != nil {
		return nil, err
	}
	log.Warn("CLERK_WEBHOOK_SIGNING_SECRET is not set: webhooks are verified with a development secret; "+
		"Clerk's real events are refused until the real secret is set",
		"dev_secret_file", path)
	return []string{secret}, nil
}
