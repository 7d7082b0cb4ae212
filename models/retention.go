package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// DeleteWebhookEventsBefore deletes at most limit webhook_events rows
// received before cutoff, oldest first, and reports how many it deleted.
// Each call is one short statement, so it never holds many row locks for
// long; on Postgres rows another replica is deleting are skipped, not waited
// for. Call it until it deletes fewer than limit.
func DeleteWebhookEventsBefore(ctx context.Context, db *gorm.DB, cutoff time.Time, limit int) (int64, error) {
	lock := ""
	if DialectOf(db) == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	res := db.WithContext(ctx).Exec(
		"DELETE FROM webhook_events WHERE svix_id IN ("+
			"SELECT svix_id FROM webhook_events WHERE received_at < ? ORDER BY received_at LIMIT ?"+lock+")",
		cutoff.UTC(), limit)
	if res.Error != nil {
		return 0, fmt.Errorf("delete webhook events before %s: %w", cutoff.UTC().Format(time.RFC3339), res.Error)
	}
	return res.RowsAffected, nil
}
