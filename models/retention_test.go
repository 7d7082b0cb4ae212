package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func TestDeleteWebhookEventsBefore(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		var rows []models.WebhookEvent
		for i := range 25 {
			rows = append(rows, models.WebhookEvent{SvixID: fmt.Sprintf("msg_old_%02d", i), EventType: "user.updated",
				Outcome: models.EventApplied, ReceivedAt: now.Add(-time.Duration(40*24+i) * time.Hour)})
		}
		rows = append(rows, models.WebhookEvent{SvixID: "msg_recent", EventType: "user.updated",
			Outcome: models.EventApplied, ReceivedAt: now.Add(-47 * time.Hour)})
		if err := db.Create(&rows).Error; err != nil {
			t.Fatal(err)
		}
		cutoff := now.Add(-48 * time.Hour)
		var batches []int64
		for {
			n, err := models.DeleteWebhookEventsBefore(ctx, db, cutoff, 10)
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, n)
			if n < 10 {
				break
			}
		}
		if fmt.Sprint(batches) != "[10 10 5]" {
			t.Errorf("batches deleted %v, want [10 10 5]", batches)
		}
		var left []string
		if err := db.Model(&models.WebhookEvent{}).Order("svix_id").Pluck("svix_id", &left).Error; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(left) != "[msg_recent]" {
			t.Errorf("rows left = %v, want [msg_recent]", left)
		}
	})
}
