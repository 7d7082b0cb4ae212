package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// Concurrent reads share queries, and each caller gets its own row (or
// ErrNotFound), exactly as models.FindProfile would answer it.
func TestProfileReaderCoalesces(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		for i := range 20 {
			id := fmt.Sprintf("user_%02d", i)
			if _, err := models.ApplySnapshot(ctx, db, models.Snapshot{ID: id, UpdatedAt: int64(i + 1)}, models.SourceLogin); err != nil {
				t.Fatal(err)
			}
		}
		r := newProfileReader(db, 8, 2)
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				id := fmt.Sprintf("user_%02d", i%25) // 20..24 have no row
				u, err := r.find(ctx, id)
				want, wantErr := models.FindProfile(ctx, db, id)
				if !errors.Is(err, wantErr) {
					t.Errorf("%s: find err = %v, FindProfile err = %v", id, err, wantErr)
				}
				if diff := cmp.Diff(want, u); diff != "" {
					t.Errorf("%s (-FindProfile +find):\n%s", id, diff)
				}
			})
		}
		wg.Wait()
	})
}
