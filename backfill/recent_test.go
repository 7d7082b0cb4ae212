package backfill_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func recent(t *testing.T, db *gorm.DB, clerk backfill.Clerk, since time.Time, pageSize int) backfill.Summary {
	t.Helper()
	sum, err := backfill.Recent(context.Background(), db, clerk, since, backfill.Options{PageSize: pageSize, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// Users updated at the same instant as the window's start, across a page
// boundary, are all read: a page that holds only such users does not end
// the pass.
func TestRecentReadsEqualUpdatedAtAcrossPages(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake := clerktest.New(t)
		since := time.UnixMilli(1_800_000_000_000)
		for i := range 5 {
			fake.PutUser(clerktest.User(fmt.Sprintf("user_eq%d", i), since.UnixMilli(), "", nil))
		}
		for i := range 5 {
			fake.PutUser(clerktest.User(fmt.Sprintf("user_old%d", i), since.UnixMilli()-1, "", nil))
		}
		client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
		sum := recent(t, db, client, since, 2)
		// Pages: eq eq | eq eq | eq old — the third holds an older user.
		if sum.Created != 6 || fake.Hits(clerktest.OpListUsers) != 3 {
			t.Errorf("created %d in %d requests, want the 5 users at since and 1 older in 3 requests", sum.Created,
				fake.Hits(clerktest.OpListUsers))
		}
		for i := range 5 {
			var n int64
			db.Model(&models.User{}).Where("id = ?", fmt.Sprintf("user_eq%d", i)).Count(&n)
			if n != 1 {
				t.Errorf("user_eq%d missing", i)
			}
		}
	})
}

// updatingClerk updates a user in the fake Clerk after the pass read its
// first page, as a change made in Clerk during a pass would.
type updatingClerk struct {
	*clerkapi.Client
	fake   *clerktest.Fake
	update func()
}

func (c *updatingClerk) ListRecentUsers(ctx context.Context, offset, limit int) (clerkapi.Page[models.Snapshot], error) {
	p, err := c.Client.ListRecentUsers(ctx, offset, limit)
	if c.update != nil {
		c.update()
		c.update = nil
	}
	return p, err
}

// A user updated while a pass runs moves to the front of the listing,
// behind the pass's reading position; the next pass, which looks back to
// this one's start, applies it.
func TestRecentUserUpdatedDuringAPassIsReadByTheNext(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		fake := clerktest.New(t)
		now := time.Now()
		for i := range 6 {
			fake.PutUser(clerktest.User(fmt.Sprintf("user_%d", i), now.Add(-time.Duration(i)*time.Second).UnixMilli(), "", nil))
		}
		client := clerkapi.NewClient(fake.URL, clerktest.SecretKey, nil)
		recent(t, db, client, time.Time{}, 500) // everything, as a first pass would

		passStart := time.Now()
		updated := passStart.Add(time.Millisecond).UnixMilli()
		c := &updatingClerk{Client: client, fake: fake, update: func() {
			fake.PutUser(clerktest.User("user_5", updated, "", nil))
		}}
		recent(t, db, c, passStart.Add(-time.Minute), 2)
		recent(t, db, c, passStart.Add(-time.Minute), 2) // the next pass, overlapping back past the first's start
		var u models.User
		db.Where("id = ?", "user_5").Take(&u)
		if u.ClerkUpdatedAt != updated {
			t.Errorf("user_5 clerk_updated_at = %d, want the update made during the first pass, %d", u.ClerkUpdatedAt, updated)
		}
	})
}
