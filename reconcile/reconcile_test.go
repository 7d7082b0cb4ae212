package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gorm.io/gorm"

	"github.com/usersync/usersync/backfill"
	"github.com/usersync/usersync/clerkapi"
	"github.com/usersync/usersync/clerkapi/clerktest"
	"github.com/usersync/usersync/metrics"
	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
	"github.com/usersync/usersync/reconcile"
)

// clock is a settable time for the reconciler's claims and cursor.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	fake  *clerktest.Fake
	db    *gorm.DB
	clock *clock
	m     *metrics.Metrics
	rec   *reconcile.Reconciler
}

func newHarness(t *testing.T, db *gorm.DB, opts reconcile.Options) *harness {
	h := &harness{fake: clerktest.New(t), db: db, clock: &clock{now: time.Now()}, m: metrics.New("test")}
	opts.Now, opts.Metrics = h.clock.Now, h.m
	if opts.Interval == 0 {
		opts.Interval = time.Minute
	}
	h.rec = reconcile.New(db, clerkapi.NewClient(h.fake.URL, clerktest.SecretKey, nil), opts)
	return h
}

func (h *harness) tick(t *testing.T, want reconcile.Kind) {
	t.Helper()
	kind, err := h.rec.Tick(context.Background())
	if err != nil || kind != want {
		t.Fatalf("Tick = %q, %v; want %q", kind, err, want)
	}
}

func (h *harness) repaired(table string) float64 {
	return testutil.ToFloat64(h.m.ReconcileRepaired.WithLabelValues(table))
}

// put stores user i in the fake Clerk, updated at the harness clock's time
// minus ago.
func (h *harness) put(i int, ago time.Duration, email string) {
	at := h.clock.Now().Add(-ago).UnixMilli()
	h.fake.PutUser(clerktest.User(fmt.Sprintf("user_%02d", i), at, email, nil))
}

func rowAt(t *testing.T, db *gorm.DB, id string) (int64, time.Time) {
	t.Helper()
	var u models.User
	if err := db.Where("id = ?", id).Take(&u).Error; err != nil {
		t.Fatalf("row %s: %v", id, err)
	}
	return u.ClerkUpdatedAt, u.UpdatedAt
}

func TestFirstPassImportsThenIncrementalPassesRepair(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{PageSize: 2, FullInterval: 24 * time.Hour})
		for i := range 5 {
			h.put(i, time.Hour, fmt.Sprintf("u%d@example.com", i))
		}
		h.tick(t, reconcile.Full) // the first pass is a full import
		var n int64
		db.Model(&models.User{}).Where("sync_source = ?", "reconcile").Count(&n)
		if n != 5 || h.repaired("users") != 0 {
			t.Fatalf("after the import: %d rows from reconcile (want 5), %v repaired (want 0: an import repairs nothing)", n, h.repaired("users"))
		}
		h.tick(t, "") // a pass began less than an interval ago

		// Webhooks missed an update of user 1 and the creation of user 9.
		h.clock.Add(time.Minute)
		h.put(1, 0, "changed@example.com")
		h.put(9, 0, "new@example.com")
		lists := h.fake.Hits(clerktest.OpListUsers)
		h.tick(t, reconcile.Incremental)
		if at, _ := rowAt(t, db, "user_01"); at != h.clock.Now().UnixMilli() {
			t.Errorf("user_01 clerk_updated_at = %d, want the missed update's %d", at, h.clock.Now().UnixMilli())
		}
		rowAt(t, db, "user_09")
		if h.repaired("users") != 2 {
			t.Errorf("repaired = %v, want 2", h.repaired("users"))
		}
		// Both changed users fill the first page, whose users are inside the
		// window, so the pass reads one more page and stops at older users.
		if got := h.fake.Hits(clerktest.OpListUsers) - lists; got != 2 {
			t.Errorf("list requests = %d, want 2", got)
		}

		// Quiet passes write nothing. The next one still reads the two users
		// the last one repaired (its window reaches Overlap before that
		// pass began); the one after reads one page.
		_, before := rowAt(t, db, "user_01")
		for _, want := range []int{2, 1} {
			h.clock.Add(10 * time.Minute)
			lists = h.fake.Hits(clerktest.OpListUsers)
			h.tick(t, reconcile.Incremental)
			if got := h.fake.Hits(clerktest.OpListUsers) - lists; got != want {
				t.Errorf("quiet pass: %d list requests, want %d", got, want)
			}
		}
		if _, after := rowAt(t, db, "user_01"); !after.Equal(before) {
			t.Errorf("quiet passes wrote user_01: updated_at %v → %v", before, after)
		}
		if h.repaired("users") != 2 {
			t.Errorf("repaired = %v after a quiet pass, want still 2", h.repaired("users"))
		}
		if got, want := testutil.ToFloat64(h.m.ReconcileLastSuccess), float64(h.clock.Now().UnixMilli())/1000; got != want {
			t.Errorf("last success gauge = %v, want %v", got, want)
		}
	})
}

// A full pass after FullInterval also prunes what Clerk deleted, and
// counts the tombstone as a repair.
func TestFullPassPrunesAndCountsRepairs(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{FullInterval: time.Hour})
		for i := range 3 {
			h.put(i, time.Hour, "")
		}
		h.tick(t, reconcile.Full)
		h.fake.DeleteUser("user_02")
		h.clock.Add(time.Hour)
		h.tick(t, reconcile.Full)
		var u models.User
		db.Where("id = ?", "user_02").Take(&u)
		if !u.Deleted() || u.SyncSource != "reconcile" {
			t.Errorf("user_02 = deleted %v, source %q; want a tombstone from reconcile", u.Deleted(), u.SyncSource)
		}
		if h.repaired("users") != 1 {
			t.Errorf("repaired = %v, want 1 (the prune)", h.repaired("users"))
		}
	})
}

// A failed pass does not move the cursor: the next one looks back as far.
func TestFailedPassKeepsTheCursor(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{Retry: fastRetry})
		h.put(0, time.Hour, "")
		h.tick(t, reconcile.Full)
		first, _ := models.ReadReconcileState(context.Background(), db)

		h.clock.Add(time.Minute)
		h.put(1, 0, "")
		h.fake.FailNext(clerktest.OpListUsers, clerktest.Failure{Status: 500}, clerktest.Failure{Status: 500})
		if kind, err := h.rec.Tick(context.Background()); kind != reconcile.Incremental || err == nil {
			t.Fatalf("Tick = %q, %v; want a failed incremental pass", kind, err)
		}
		st, _ := models.ReadReconcileState(context.Background(), db)
		if st.LastSuccessAt != first.LastSuccessAt || st.Holder != "" {
			t.Fatalf("after a failed pass: %+v, want the cursor %d kept and the claim released", st, first.LastSuccessAt)
		}
		h.clock.Add(time.Minute)
		h.tick(t, reconcile.Incremental)
		rowAt(t, db, "user_01")
		if got := testutil.ToFloat64(h.m.ReconcilePasses.WithLabelValues("incremental", "error")); got != 1 {
			t.Errorf("failed passes counted = %v, want 1", got)
		}
	})
}

// fastRetry gives up after two quick tries.
var fastRetry = backfill.Retry{Attempts: 2, Base: time.Millisecond, MaxWait: time.Millisecond}

// A row dated in 2100 (rule 11) is repaired by the next incremental pass,
// though Clerk's real updated_at is older than the pass's window.
func TestPassRepairsAFutureDatedRow(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{})
		h.put(0, 2*time.Hour, "ada@example.com")
		h.put(1, 2*time.Hour, "grace@example.com")
		h.tick(t, reconcile.Full)
		poisoned := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		if err := db.Exec("UPDATE users SET clerk_updated_at = ?, first_name = 'Frozen' WHERE id = 'user_00'", poisoned).Error; err != nil {
			t.Fatal(err)
		}
		h.clock.Add(10 * time.Minute)
		h.tick(t, reconcile.Incremental)
		var u models.User
		db.Where("id = ?", "user_00").Take(&u)
		if u.ClerkUpdatedAt == poisoned || u.FirstName == nil || *u.FirstName != "Ada" {
			t.Errorf("user_00 = clerk_updated_at %d, first_name %v; want Clerk's snapshot back", u.ClerkUpdatedAt, u.FirstName)
		}
		if h.repaired("users") != 1 {
			t.Errorf("repaired = %v, want 1", h.repaired("users"))
		}
	})
}

// A key of another instance stops every pass before anything is listed.
func TestPassRefusesAnotherInstance(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{Guard: func(ctx context.Context) error {
			return models.GuardInstance(ctx, db, "ins_dev")
		}})
		if _, err := models.BindInstance(t.Context(), db, "ins_prod"); err != nil {
			t.Fatal(err)
		}
		h.put(0, time.Hour, "")
		kind, err := h.rec.Tick(context.Background())
		if kind != "" || err == nil || !strings.Contains(err.Error(), "this database mirrors ins_prod") {
			t.Fatalf("Tick = %q, %v; want no pass, refused", kind, err)
		}
		if n := h.fake.Hits(clerktest.OpListUsers); n != 0 {
			t.Errorf("%d listings, want none", n)
		}
	})
}

// A full pass whose prune the cap refuses applies everything else, logs
// and counts the refusal.
func TestFullPassPruneRefused(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		h := newHarness(t, db, reconcile.Options{FullInterval: time.Hour})
		for i := range 12 {
			h.put(i, time.Hour, "")
		}
		h.tick(t, reconcile.Full)
		for i := range 11 { // Clerk's listing comes back short
			h.fake.DeleteUser(fmt.Sprintf("user_%02d", i))
		}
		h.put(20, 0, "")
		h.clock.Add(time.Hour)
		h.tick(t, reconcile.Full)
		var live int64
		db.Model(&models.User{}).Where("deleted_at IS NULL").Count(&live)
		if live != 13 {
			t.Errorf("live rows = %d, want 13: nothing pruned, user_20 created", live)
		}
		if got := testutil.ToFloat64(h.m.PruneRefused.WithLabelValues("users")); got != 1 {
			t.Errorf("usersync_prune_refused_total{table=users} = %v, want 1", got)
		}
	})
}
