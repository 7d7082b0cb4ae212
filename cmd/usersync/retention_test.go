package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// A 40-day-old webhook_events row is gone within seconds of serve starting,
// while a 2-day-old one stays, and the deletion is counted on /metrics.
func TestServeDeletesOldWebhookEvents(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Chdir(t.TempDir())
			dsn := modelstest.NewDSN(t, d)
			db := modelstest.Open(t, d, dsn)
			now := time.Now().UTC().Truncate(time.Second)
			rows := []models.WebhookEvent{
				{SvixID: "msg_40_days", EventType: "user.updated", Outcome: models.EventApplied, ReceivedAt: now.Add(-40 * 24 * time.Hour)},
				{SvixID: "msg_2_days", EventType: "user.updated", Outcome: models.EventApplied, ReceivedAt: now.Add(-49 * time.Hour)},
			}
			if err := db.Create(&rows).Error; err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "warn", "DATABASE_URL": dsn}
			if d == models.SQLite {
				env["DATABASE_URL"] = "sqlite://" + dsn
			}
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- run(ctx, []string{"serve"}, envOf(env), io.Discard, &bytes.Buffer{}) }()
			defer func() {
				stop()
				if err := <-served; err != nil {
					t.Errorf("serve: %v", err)
				}
			}()
			waitHealthy(t, env["PORT"], served)

			var left []string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				left = nil
				if err := db.Model(&models.WebhookEvent{}).Order("svix_id").Pluck("svix_id", &left).Error; err != nil {
					t.Fatal(err)
				}
				if len(left) == 1 {
					break
				}
			}
			if fmt.Sprint(left) != "[msg_2_days]" {
				t.Fatalf("webhook_events left = %v, want [msg_2_days]", left)
			}
			if got := metricLine(t, env["PORT"], "usersync_webhook_events_deleted_total"); got != "usersync_webhook_events_deleted_total 1" {
				t.Errorf("metric line = %q, want a count of 1", got)
			}
		})
	}
}

// metricLine returns the /metrics line that starts with name.
func metricLine(t *testing.T, port, name string) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}
