// Package retention deletes old webhook_events rows while serve runs: one
// pass at start, then one an hour, each in small batches.
package retention

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/config"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
)

// Defaults of a Job.
const (
	DefaultEvery = time.Hour
	DefaultBatch = 1000
	// pause between batches, so a large backlog never crowds out webhooks.
	pause = 50 * time.Millisecond
)

// Job deletes webhook_events rows older than Keep. Several replicas may run
// it at once: each batch is one short statement and they skip each other's rows.
type Job struct {
	DB      *gorm.DB
	Keep    time.Duration // never less than config.MinWebhookEventsRetention in effect
	Every   time.Duration // DefaultEvery when 0
	Batch   int           // DefaultBatch when 0
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Run makes a pass at once and then every Every until ctx ends.
func (j Job) Run(ctx context.Context) {
	if j.Every == 0 {
		j.Every = DefaultEvery
	}
	tick := time.NewTicker(j.Every)
	defer tick.Stop()
	for {
		j.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Pass deletes every row older than the cutoff, batch by batch, and
// reports how many it deleted. A failure is logged; the next pass retries.
func (j Job) Pass(ctx context.Context) int64 {
	if j.Batch == 0 {
		j.Batch = DefaultBatch
	}
	// Whatever Keep says, a row inside Svix's retry window may still
	// de-duplicate a redelivery.
	cutoff := time.Now().Add(-max(j.Keep, config.MinWebhookEventsRetention))
	var total int64
	for {
		n, err := models.DeleteWebhookEventsBefore(ctx, j.DB, cutoff, j.Batch)
		total += n
		j.Metrics.WebhookEventsDeleted.Add(float64(n))
		if err != nil {
			if ctx.Err() == nil {
				j.Log.Error("webhook_events retention failed; retrying at the next pass", "deleted", total, "err", err)
			}
			return total
		}
		if n < int64(j.Batch) {
			break
		}
		select {
		case <-ctx.Done():
			return total
		case <-time.After(pause):
		}
	}
	j.Metrics.RetentionLastSuccess.SetToCurrentTime()
	if total > 0 {
		j.Log.Info("webhook_events retention", "deleted", total, "older_than", cutoff.UTC().Format(time.RFC3339))
	}
	return total
}
