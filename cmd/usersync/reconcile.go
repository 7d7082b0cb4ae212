package main

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/reconcile"
)

// startReconcile runs the reconcile passes (contract section 8) in the
// background through client, the process's one budgeted Clerk client, and
// returns a function that stops them and waits (a pass in flight releases
// its claim as it stops).
func startReconcile(ctx context.Context, cfg config.Config, db *gorm.DB, client *clerkapi.Client,
	guard func(context.Context) error, m *metrics.Metrics, log *slog.Logger) func() {
	seedWebhookGauge(ctx, db, m, log)
	switch {
	case cfg.ReconcileInterval == 0:
		log.Warn("SYNC_RECONCILE_INTERVAL is 0: reconcile is off; rows webhooks miss stay wrong until a login sync or a backfill")
		return func() {}
	case client == nil:
		log.Warn("reconcile is off: CLERK_SECRET_KEY is not set")
		return func() {}
	}
	rec := reconcile.New(db, client, reconcile.Options{Interval: cfg.ReconcileInterval,
		FullInterval: cfg.FullReconcileInterval, Log: log.With("component", "reconcile"), Metrics: m, Guard: guard})
	log.Info("reconcile on", "interval", cfg.ReconcileInterval.String(), "full_interval", cfg.FullReconcileInterval.String())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// seedWebhookGauge starts usersync_webhook_last_applied_timestamp_seconds
// at what webhook_events records, so a restart does not read as silence.
func seedWebhookGauge(ctx context.Context, db *gorm.DB, m *metrics.Metrics, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	at, err := models.LastAppliedWebhook(ctx, db)
	if err != nil {
		log.Warn("could not read when a webhook last changed a row", "err", err)
		return
	}
	if !at.IsZero() {
		m.WebhookLastApplied.Set(float64(at.UnixMilli()) / 1000)
	}
}
