package backfill

import (
	"testing"

	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/models"
)

// Where an incremental pass stops: the listing runs newest-updated first,
// so the first page that reaches a user updated before since is the last.
func TestLastRecentPage(t *testing.T) {
	const since = 1000
	page := func(size int, updatedAts ...int64) clerkapi.Page[models.Snapshot] {
		p := clerkapi.Page[models.Snapshot]{Size: size}
		for _, at := range updatedAts {
			p.Snapshots = append(p.Snapshots, models.Snapshot{UpdatedAt: at})
		}
		return p
	}
	for _, tc := range []struct {
		name string
		page clerkapi.Page[models.Snapshot]
		last bool
	}{
		{"a full page, every user inside the window", page(3, 1500, 1200, 1001), false},
		{"a full page whose oldest user is older", page(3, 1500, 1200, 999), true},
		{"a full page of users updated exactly at since: more may follow", page(3, 1000, 1000, 1000), false},
		{"equal values at since, then one older", page(3, 1000, 1000, 999), true},
		{"a short page ends the listing", page(2, 1500, 1200), true},
		{"an empty page", page(0), true},
		{"a full page of users that could not be mapped", page(3), false},
		{"a page boundary right at since: the next page decides", page(3, 1002, 1001, 1000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastRecentPage(tc.page, 3, since); got != tc.last {
				t.Errorf("lastRecentPage = %v, want %v", got, tc.last)
			}
		})
	}
}
