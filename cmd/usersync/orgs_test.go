package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// Clerk's documented organization and membership payloads, signed by
// `usersync webhook send --file` and posted as they are, apply.
func TestWebhookSendOrganizationFixtures(t *testing.T) {
	fixtures, err := filepath.Abs(filepath.Join("..", "..", "testdata", "clerk"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Chdir(t.TempDir())
			dsn := modelstest.NewDSN(t, d)
			env := map[string]string{"PORT": fmt.Sprint(freePort(t)), "LOG_LEVEL": "warn", "DATABASE_URL": dsn}
			if d == models.SQLite {
				env["DATABASE_URL"] = "sqlite://" + dsn
			}
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- run(ctx, []string{"serve"}, envOf(env), &bytes.Buffer{}, &bytes.Buffer{}) }()
			waitHealthy(t, env["PORT"], served)
			for _, file := range []string{
				"clerk_organization_created_example.json",
				"clerk_organization_membership_created_example.json",
				"clerk_organization_membership_deleted_example.json",
				"clerk_organization_deleted_example.json",
			} {
				var out bytes.Buffer
				path := filepath.Join(fixtures, file)
				if err := run(context.Background(), []string{"webhook", "send", "--file", path}, envOf(env), &out, &bytes.Buffer{}); err != nil {
					t.Fatalf("webhook send --file %s: %v", file, err)
				}
				if got := strings.TrimSpace(out.String()); got != `200 {"outcome":"applied"}` {
					t.Errorf("webhook send --file %s printed %q", file, got)
				}
			}
			stop()
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			db := modelstest.Open(t, d, dsn)
			var orgs, mems int64
			db.Model(&models.Organization{}).Where("deleted_at IS NOT NULL").Count(&orgs)
			db.Model(&models.Membership{}).Where("deleted_at IS NOT NULL").Count(&mems)
			if orgs != 1 || mems != 1 {
				t.Errorf("tombstones: %d organizations, %d memberships; want 1 and 1", orgs, mems)
			}
		})
	}
}
