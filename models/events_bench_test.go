package models_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// BenchmarkProcessEvents applies batches of 16 webhook events for distinct
// users, as the Batcher does under a burst; ns/op is per batch.
//
//	TEST_DATABASE_URL=postgres://… go test -run '^$' -bench ProcessEvents ./models/
func BenchmarkProcessEvents(b *testing.B) {
	for _, d := range modelstest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := modelstest.New(b, d)
			raw := `{"id":"user_x","object":"user","first_name":"Load","email_addresses":[],"public_metadata":{}}`
			n := 0
			for b.Loop() {
				evs := make([]models.Event, 16)
				for i := range evs {
					n++
					s := snap(fmt.Sprintf("user_%d", n%5000), int64(n), email(fmt.Sprintf("u%d@x.io", n%5000)))
					s.RawJSON = raw
					evs[i] = models.Event{SvixID: fmt.Sprintf("msg_%d", n), Type: "user.updated", Kind: models.EventUpsert, UserID: s.ID, Snapshot: s}
				}
				if _, err := models.ProcessEvents(context.Background(), db, evs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
