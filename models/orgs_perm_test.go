package models_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// eventSets are small streams of organization, membership and user events
// that exercise rules 8–10 against each other; ns makes their ids unique,
// so many orders of one set can share a database.
var eventSets = map[string]func(ns string) []models.Event{
	// Memberships of one organization: an update, a deletion older than the
	// update, a re-add for the same user, and a member whose user is deleted.
	"memberships": func(ns string) []models.Event {
		a := orgAt("org_a"+ns, "PRO")
		return []models.Event{
			memEvent("e1"+ns, models.EventMembershipUpsert, memSnap("orgmem_1"+ns, "org_a"+ns, "user_1"+ns, 1, 1, "org:member"), a(1)),
			memEvent("e2"+ns, models.EventMembershipUpsert, memSnap("orgmem_1"+ns, "org_a"+ns, "user_1"+ns, 1, 3, "org:admin"), a(2)),
			memEvent("e3"+ns, models.EventMembershipDelete, memSnap("orgmem_1"+ns, "org_a"+ns, "user_1"+ns, 1, 2, "org:admin"), a(1)),
			memEvent("e4"+ns, models.EventMembershipUpsert, memSnap("orgmem_2"+ns, "org_a"+ns, "user_1"+ns, 5, 5, "org:member"), a(2)),
			memEvent("e5"+ns, models.EventMembershipUpsert, memSnap("orgmem_3"+ns, "org_a"+ns, "user_2"+ns, 2, 2, "org:member"), a(1)),
			{SvixID: "e6" + ns, Type: "user.deleted", Kind: models.EventDelete, UserID: "user_2" + ns},
		}
	},
	// Two users deleted, in one batch in the odd orders: each one's
	// memberships become tombstones, a third member's stay live.
	"users deleted": func(ns string) []models.Event {
		c := orgAt("org_c"+ns, "FREE")
		return []models.Event{
			memEvent("g1"+ns, models.EventMembershipUpsert, memSnap("orgmem_6"+ns, "org_c"+ns, "user_5"+ns, 1, 1, "org:admin"), c(1)),
			memEvent("g2"+ns, models.EventMembershipUpsert, memSnap("orgmem_7"+ns, "org_c"+ns, "user_6"+ns, 2, 2, "org:member"), c(1)),
			memEvent("g3"+ns, models.EventMembershipUpsert, memSnap("orgmem_8"+ns, "org_c"+ns, "user_7"+ns, 3, 3, "org:member"), c(2)),
			{SvixID: "g4" + ns, Type: "user.deleted", Kind: models.EventDelete, UserID: "user_5" + ns},
			{SvixID: "g5" + ns, Type: "user.deleted", Kind: models.EventDelete, UserID: "user_6" + ns},
		}
	},
	// An organization deleted while memberships of it (carrying a newer
	// organization snapshot) arrive, and the user of one of them.
	"organization deleted": func(ns string) []models.Event {
		b := orgAt("org_b"+ns, "MAXX")
		return []models.Event{
			{SvixID: "f1" + ns, Type: "organization.created", Kind: models.EventOrgUpsert, UserID: "org_b" + ns, Org: b(1)},
			memEvent("f2"+ns, models.EventMembershipUpsert, memSnap("orgmem_4"+ns, "org_b"+ns, "user_3"+ns, 1, 1, "org:admin"), b(1)),
			{SvixID: "f4" + ns, Type: "organization.deleted", Kind: models.EventOrgDelete, UserID: "org_b" + ns, Org: models.OrgSnapshot{ID: "org_b" + ns}},
			memEvent("f5"+ns, models.EventMembershipUpsert, memSnap("orgmem_5"+ns, "org_b"+ns, "user_4"+ns, 3, 3, "org:member"), b(2)),
			memEvent("f6"+ns, models.EventMembershipUpsert, memSnap("orgmem_4"+ns, "org_b"+ns, "user_3"+ns, 1, 4, "org:member"), b(2)),
			upsertEvent("f7"+ns, snap("user_3"+ns, 1)),
		}
	},
}

func orgAt(id, tier string) func(int64) models.OrgSnapshot {
	return func(at int64) models.OrgSnapshot { return orgSnap(id, at, orgTier(tier)) }
}

func memEvent(svixID string, kind models.EventKind, m models.MembershipSnapshot, org models.OrgSnapshot) models.Event {
	typ := map[models.EventKind]string{models.EventMembershipUpsert: "organizationMembership.updated",
		models.EventMembershipDelete: "organizationMembership.deleted"}[kind]
	return models.Event{SvixID: svixID, Type: typ, Kind: kind, UserID: m.ID, Membership: withOrg(m, org)}
}

// tables is what rules 8–10 determine whatever the order: live rows in
// full, tombstones by what never changes (id, and a membership's pair and
// creation time; a tombstone's tier and last updated_at depend on what
// arrived before the deletion).
type tables struct {
	Orgs  map[string]orgView
	Mems  map[string]memView
	Users map[string]bool // id → tombstone
}

// project keeps of a tombstone what rule 8 fixes whatever the order: its
// id, and no personal data (name, slug, raw JSON; orgTable checks the image
// and creator); its tier and counts depend on what arrived before it.
func project(o orgView) orgView {
	if o.Deleted {
		return orgView{ID: o.ID, Name: o.Name, Slug: o.Slug, HasRaw: o.HasRaw, Deleted: true}
	}
	return o
}

func projectMem(m memView) memView {
	if m.Deleted {
		return memView{ID: m.ID, Org: m.Org, User: m.User, Created: m.Created, Deleted: true}
	}
	return m
}

// model computes the tables from a set of events by rules 8–10 directly,
// without any order: the newest snapshot wins, deletions win over
// snapshots, a membership is live unless it, its organization or its user
// was deleted or its pair has a newer membership.
func model(events []models.Event) tables {
	orgSnaps := map[string]models.OrgSnapshot{}
	deletedOrgs, deadUsers, deletedMems := map[string]bool{}, map[string]bool{}, map[string]bool{}
	memSnaps := map[string]models.MembershipSnapshot{}
	users := map[string]bool{}
	newestOrg := func(s models.OrgSnapshot) {
		if cur, ok := orgSnaps[s.ID]; !ok || s.UpdatedAt > cur.UpdatedAt {
			orgSnaps[s.ID] = s
		}
	}
	for _, ev := range events {
		switch ev.Kind {
		case models.EventOrgUpsert:
			newestOrg(ev.Org)
		case models.EventOrgDelete:
			deletedOrgs[ev.Org.ID] = true
		case models.EventMembershipUpsert, models.EventMembershipDelete:
			m := ev.Membership
			newestOrg(*m.Org)
			if cur, ok := memSnaps[m.ID]; !ok || (ev.Kind == models.EventMembershipUpsert && m.UpdatedAt > cur.UpdatedAt) {
				memSnaps[m.ID] = m
			}
			if ev.Kind == models.EventMembershipDelete {
				deletedMems[m.ID] = true
			}
		case models.EventDelete:
			deadUsers[ev.UserID], users[ev.UserID] = true, true
		case models.EventUpsert:
			users[ev.Snapshot.ID] = users[ev.Snapshot.ID] || false
		}
	}
	want := tables{Orgs: map[string]orgView{}, Mems: map[string]memView{}, Users: users}
	for id := range deletedOrgs {
		want.Orgs[id] = orgView{ID: id, Deleted: true}
	}
	for id, s := range orgSnaps {
		if !deletedOrgs[id] {
			want.Orgs[id] = orgView{ID: id, Name: s.Name, Slug: s.Slug, Tier: s.Tier, MembersCount: s.MembersCount,
				ClerkUpdatedAt: s.UpdatedAt, HasRaw: true, Source: models.SourceWebhook}
		}
	}
	for id, m := range memSnaps {
		dead := deletedMems[id] || deletedOrgs[m.OrganizationID] || deadUsers[m.UserID]
		for _, o := range memSnaps {
			if o.ID != id && o.OrganizationID == m.OrganizationID && o.UserID == m.UserID &&
				(o.CreatedAt > m.CreatedAt || (o.CreatedAt == m.CreatedAt && o.ID > m.ID)) {
				dead = true
			}
		}
		v := liveMem(id, m.OrganizationID, m.UserID, m.CreatedAt, m.UpdatedAt, m.Role)
		if dead {
			v = memView{ID: id, Org: m.OrganizationID, User: m.UserID, Created: m.CreatedAt, Deleted: true}
		}
		want.Mems[id] = v
	}
	return want
}

// readTables reads the rows whose ids end in ns, with ns cut off, projected
// to what the model fixes.
func readTables(t *testing.T, db *gorm.DB, ns string) tables {
	t.Helper()
	got, err := loadTables(db, ns)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// loadTables reads the rows of namespace ns; it returns errors rather than
// failing the test, so worker goroutines can call it.
func loadTables(db *gorm.DB, ns string) (tables, error) {
	got := tables{Orgs: map[string]orgView{}, Mems: map[string]memView{}, Users: map[string]bool{}}
	mine := func() *gorm.DB { return db.Where("id LIKE ?", "%"+ns).Order("id") }
	var orgs []models.Organization
	var mems []models.Membership
	var users []models.User
	if err := mine().Find(&orgs).Error; err != nil {
		return got, err
	}
	if err := mine().Find(&mems).Error; err != nil {
		return got, err
	}
	if err := mine().Find(&users).Error; err != nil {
		return got, err
	}
	for _, o := range orgs {
		v, err := orgViewOf(o)
		if err != nil {
			return got, err
		}
		got.Orgs[o.ID] = project(v)
	}
	for _, m := range mems {
		got.Mems[m.ID] = projectMem(memViewOf(m))
	}
	for _, u := range users {
		got.Users[u.ID] = u.Deleted()
	}
	return got, nil
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

// Every order of each event set gives the tables the model gives. Even
// orders apply one event per transaction, odd ones the whole order in one
// batch, so both paths are compared with the model.
func TestOrgEventPermutations(t *testing.T) {
	for name, set := range eventSets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				perms := permutations(len(set("")))
				if testing.Short() {
					perms = perms[:60]
				}
				// Four workers; only this goroutine reports, so a failure
				// ends the test instead of blocking the workers' feed.
				failures := make([]error, len(perms))
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						for p := int(next.Add(1) - 1); p < len(perms); p = int(next.Add(1) - 1) {
							failures[p] = runPermutation(db, set, perms[p], p)
						}
					})
				}
				wg.Wait()
				for _, err := range failures {
					if err != nil {
						t.Error(err)
					}
				}
			})
		})
	}
}

func runPermutation(db *gorm.DB, set func(string) []models.Event, order []int, p int) error {
	ns := fmt.Sprintf("_p%d", p)
	events := set(ns)
	ordered := make([]models.Event, len(order))
	for i, j := range order {
		ordered[i] = events[j]
	}
	ctx := context.Background()
	if p%2 == 1 {
		if _, err := models.ProcessEvents(ctx, db, ordered); err != nil {
			return fmt.Errorf("order %v: %w", order, err)
		}
	} else {
		for _, ev := range ordered {
			if _, err := modelstest.ProcessEvent(ctx, db, ev); err != nil {
				return fmt.Errorf("order %v: %s: %w", order, ev.SvixID, err)
			}
		}
	}
	got, err := loadTables(db, ns)
	if err != nil {
		return fmt.Errorf("order %v: %w", order, err)
	}
	if diff := cmp.Diff(model(events), got); diff != "" {
		return fmt.Errorf("order %v (-model +tables):\n%s", order, diff)
	}
	return nil
}

// A shuffled stream of every set, each event delivered three times, sent
// by many goroutines to two replicas (each with its own pool, as two
// usersync instances have; on Postgres one of them through the transaction
// pooler) in batches of up to five events, as the handlers' commit batcher
// forms them, gives the model's tables, and records each svix id once.
func TestOrgEventsConcurrentReplicas(t *testing.T) {
	for _, d := range modelstest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			dsn := modelstest.NewDSN(t, d)
			one := modelstest.Open(t, d, dsn)
			two := modelstest.Open(t, d, dsn)
			if d == models.Postgres {
				two = pooledTwin(t, dsn)
			}
			replicas := []*gorm.DB{one, two}
			for round := range 8 {
				ns := fmt.Sprintf("_r%d", round)
				var events []models.Event
				for _, set := range eventSets {
					events = append(events, set(ns)...)
				}
				want := model(events)
				var stream []models.Event
				for range 3 {
					stream = append(stream, events...)
				}
				rand.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
				var wg sync.WaitGroup
				for i := 0; i < len(stream); i += 5 {
					batch := stream[i:min(i+5, len(stream))]
					db := replicas[(i/5)%2]
					wg.Go(func() {
						if _, err := models.ProcessEvents(context.Background(), db, batch); err != nil {
							t.Errorf("batch from %s: %v", batch[0].SvixID, err)
						}
					})
				}
				wg.Wait()
				if diff := cmp.Diff(want, readTables(t, one, ns)); diff != "" {
					t.Errorf("round %d (-model +tables):\n%s", round, diff)
				}
				var n int64
				one.Model(&models.WebhookEvent{}).Where("svix_id LIKE ?", "%"+ns).Count(&n)
				if n != int64(len(events)) {
					t.Errorf("round %d: %d webhook_events rows, want %d", round, n, len(events))
				}
			}
		})
	}
}

// pooledTwin opens the Postgres database at dsn a second time, through the
// transaction pooler when TEST_PGBOUNCER_URL is set.
func pooledTwin(t *testing.T, dsn string) *gorm.DB {
	pooler := modelstest.PoolerURLFor(t, dsn)
	return modelstest.Open(t, models.Postgres, pooler)
}
