package models_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func ptr[T any](v T) *T { return &v }

// snap builds a snapshot; options set the fields a case cares about.
func snap(id string, updatedAt int64, opts ...func(*models.Snapshot)) models.Snapshot {
	s := models.Snapshot{
		ID:        id,
		UpdatedAt: updatedAt,
		FirstName: ptr(fmt.Sprintf("First %d", updatedAt)),
		RawJSON:   fmt.Sprintf(`{"id":%q,"updated_at":%d}`, id, updatedAt),
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func email(e string) func(*models.Snapshot) {
	return func(s *models.Snapshot) { s.Email = &e; s.EmailVerified = true }
}

func tier(t string) func(*models.Snapshot) { return func(s *models.Snapshot) { s.Tier = t } }

func phoneOnly(p string) func(*models.Snapshot) {
	return func(s *models.Snapshot) { s.Email = nil; s.PhoneNumber = &p }
}

// step is one delivery (or one application write) in a rule case.
type step struct {
	apply   *models.Snapshot
	del     string    // tombstone this id
	setTier [2]string // {id, tier}: the application changes a tier itself
	want    models.Outcome
}

func apply(s models.Snapshot, want models.Outcome) step { return step{apply: &s, want: want} }
func del(id string, want models.Outcome) step           { return step{del: id, want: want} }
func setTier(id, t string) step                         { return step{setTier: [2]string{id, t}} }

// rowView is the part of a row the rules speak about.
type rowView struct {
	ID             string
	Email          *string
	FirstName      *string
	PhoneNumber    *string
	Tier           string
	ClerkUpdatedAt int64
	Deleted        bool
	EmailVerified  bool
	HasRaw         bool
}

func view(u models.User) rowView {
	return rowView{
		ID: u.ID, Email: u.Email, FirstName: u.FirstName, PhoneNumber: u.PhoneNumber,
		Tier: u.Tier, ClerkUpdatedAt: u.ClerkUpdatedAt, Deleted: u.Deleted(),
		EmailVerified: u.EmailVerified, HasRaw: u.RawJSON != nil,
	}
}

func live(id string, updatedAt int64, emailAddr *string, tier string) rowView {
	return rowView{
		ID: id, Email: emailAddr, FirstName: ptr(fmt.Sprintf("First %d", updatedAt)), Tier: tier,
		ClerkUpdatedAt: updatedAt, EmailVerified: emailAddr != nil, HasRaw: true,
	}
}

func tomb(id string, updatedAt int64, tier string) rowView {
	return rowView{ID: id, Tier: tier, ClerkUpdatedAt: updatedAt, Deleted: true}
}

func TestApplySnapshotRules(t *testing.T) {
	const a, b = "user_a", "user_b"
	cases := []struct {
		name  string
		steps []step
		want  []rowView // every row of the table, ordered by id
	}{
		{"new user is created FREE", []step{
			apply(snap(a, 10, email("A@Example.com")), models.Created),
		}, []rowView{live(a, 10, ptr("a@example.com"), "FREE")}},
		{"newer snapshot wins", []step{
			apply(snap(a, 10, email("a@x.io")), models.Created),
			apply(snap(a, 20, email("a2@x.io")), models.Updated),
		}, []rowView{live(a, 20, ptr("a2@x.io"), "FREE")}},
		{"older snapshot changes nothing", []step{
			apply(snap(a, 20, email("a2@x.io")), models.Created),
			apply(snap(a, 10, email("a@x.io")), models.Stale),
		}, []rowView{live(a, 20, ptr("a2@x.io"), "FREE")}},
		{"equal snapshot changes nothing", []step{
			apply(snap(a, 20, email("a@x.io")), models.Created),
			apply(snap(a, 20, email("other@x.io")), models.Unchanged),
		}, []rowView{live(a, 20, ptr("a@x.io"), "FREE")}},
		{"delete then newer update stays a tombstone", []step{
			apply(snap(a, 10, email("a@x.io"), tier("PRO")), models.Created),
			del(a, models.Deleted),
			apply(snap(a, 30, email("a@x.io")), models.Gone),
		}, []rowView{tomb(a, 10, "PRO")}},
		{"delete of unknown id then user.created stays a tombstone", []step{
			del(a, models.Deleted),
			apply(snap(a, 10, email("a@x.io")), models.Gone),
		}, []rowView{tomb(a, 0, "FREE")}},
		{"second delete is gone", []step{
			del(a, models.Deleted),
			del(a, models.Gone),
		}, []rowView{tomb(a, 0, "FREE")}},
		{"tombstone frees its email for another user", []step{
			apply(snap(a, 10, email("e@x.io")), models.Created),
			del(a, models.Deleted),
			apply(snap(b, 5, email("e@x.io")), models.Created),
		}, []rowView{tomb(a, 10, "FREE"), live(b, 5, ptr("e@x.io"), "FREE")}},
		{"user with only a phone number", []step{
			apply(snap(a, 10, phoneOnly("+15555550100")), models.Created),
		}, []rowView{{ID: a, FirstName: ptr("First 10"), PhoneNumber: ptr("+15555550100"), Tier: "FREE", ClerkUpdatedAt: 10, HasRaw: true}}},
		{"email swap: newer holder arrives second", []step{
			apply(snap(a, 10, email("e@x.io")), models.Created),
			apply(snap(b, 20, email("e@x.io")), models.Created),
		}, []rowView{live(a, 10, nil, "FREE"), live(b, 20, ptr("e@x.io"), "FREE")}},
		{"email swap: newer holder arrives first", []step{
			apply(snap(b, 20, email("e@x.io")), models.Created),
			apply(snap(a, 10, email("e@x.io")), models.Created),
		}, []rowView{live(a, 10, nil, "FREE"), live(b, 20, ptr("e@x.io"), "FREE")}},
		{"email tie: larger id keeps it, either order", []step{
			apply(snap(b, 10, email("e@x.io")), models.Created),
			apply(snap(a, 10, email("e@x.io")), models.Created),
		}, []rowView{live(a, 10, nil, "FREE"), live(b, 10, ptr("e@x.io"), "FREE")}},
		{"email tie reversed", []step{
			apply(snap(a, 10, email("e@x.io")), models.Created),
			apply(snap(b, 10, email("e@x.io")), models.Created),
		}, []rowView{live(a, 10, nil, "FREE"), live(b, 10, ptr("e@x.io"), "FREE")}},
		{"tier from public_metadata", []step{
			apply(snap(a, 10, tier("PRO")), models.Created),
		}, []rowView{live(a, 10, nil, "PRO")}},
		{"tier from metadata survives snapshots without one", []step{
			apply(snap(a, 10, tier("MAXX")), models.Created),
			apply(snap(a, 20), models.Updated),
		}, []rowView{live(a, 20, nil, "MAXX")}},
		{"tier set by the application survives later snapshots", []step{
			apply(snap(a, 10), models.Created),
			setTier(a, "PRO"),
			apply(snap(a, 20), models.Updated),
			apply(snap(a, 30, email("a@x.io")), models.Updated),
		}, []rowView{live(a, 30, ptr("a@x.io"), "PRO")}},
		{"metadata tier replaces the application's", []step{
			apply(snap(a, 10), models.Created),
			setTier(a, "PRO"),
			apply(snap(a, 20, tier("FREE")), models.Updated),
		}, []rowView{live(a, 20, nil, "FREE")}},
		{"newer identical snapshot still advances clerk_updated_at", []step{
			apply(snap(a, 10, email("a@x.io")), models.Created),
			apply(snap(a, 11, email("a@x.io"), func(s *models.Snapshot) { s.FirstName = ptr("First 10") }), models.Updated),
			apply(snap(a, 10, email("a@x.io")), models.Stale),
		}, []rowView{{ID: a, Email: ptr("a@x.io"), FirstName: ptr("First 10"), Tier: "FREE", ClerkUpdatedAt: 11, EmailVerified: true, HasRaw: true}}},
	}
	for _, tc := range cases {
		for _, batched := range []bool{false, true} {
			name := tc.name
			if batched {
				name += " (batched)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				runRuleCase(t, tc.steps, tc.want, batched)
			})
		}
	}
}

func runRuleCase(t *testing.T, steps []step, want []rowView, batched bool) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		for i, st := range steps {
			got, err := runStep(ctx, db, st, batched)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if got != st.want {
				t.Fatalf("step %d outcome = %q, want %q", i, got, st.want)
			}
		}
		if diff := cmp.Diff(want, tableView(t, db)); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

// runStep applies one step; batched sends a snapshot through ApplySnapshots.
func runStep(ctx context.Context, db *gorm.DB, st step, batched bool) (models.Outcome, error) {
	switch {
	case st.apply != nil && batched:
		out, err := models.Apply(ctx, db, modelstest.UserChanges([]models.Snapshot{*st.apply}), models.SourceWebhook)
		if err != nil {
			return "", err
		}
		return out[0], nil
	case st.apply != nil:
		return models.ApplySnapshot(ctx, db, *st.apply, models.SourceWebhook)
	case st.del != "":
		return models.Tombstone(ctx, db, st.del, models.SourceWebhook)
	default:
		return "", db.Model(&models.User{}).Where("id = ?", st.setTier[0]).Update("tier", st.setTier[1]).Error
	}
}

func tableView(t *testing.T, db *gorm.DB) []rowView {
	t.Helper()
	var users []models.User
	if err := db.Order("id").Find(&users).Error; err != nil {
		t.Fatalf("read users: %v", err)
	}
	out := make([]rowView, len(users))
	for i, u := range users {
		out[i] = view(u)
	}
	return out
}

func TestTombstoneClearsPersonalData(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := snap("user_a", 10, email("a@x.io"), tier("PRO"), func(s *models.Snapshot) {
			s.LastName, s.ImageURL, s.Username, s.PhoneNumber = ptr("L"), ptr("https://img"), ptr("u"), ptr("+1")
		})
		if _, err := models.ApplySnapshot(ctx, db, s, models.SourceLogin); err != nil {
			t.Fatal(err)
		}
		if _, err := models.Tombstone(ctx, db, "user_a", models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		u, err := modelstest.FindUser(ctx, db, "user_a")
		if err != nil {
			t.Fatal(err)
		}
		want := models.User{
			ID: "user_a", Tier: "PRO", ClerkUpdatedAt: 10, SyncSource: models.SourceWebhook,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, DeletedAt: u.DeletedAt, SyncedAt: u.SyncedAt,
		}
		if diff := cmp.Diff(want, u); diff != "" {
			t.Errorf("tombstone (-want +got):\n%s", diff)
		}
		if u.DeletedAt == nil {
			t.Fatal("deleted_at is NULL")
		}
	})
}

// Rule 7: a snapshot that is not newer writes nothing, not even updated_at.
func TestNotNewerWritesNothing(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := snap("user_a", 10, email("a@x.io"))
		if _, err := models.ApplySnapshot(ctx, db, s, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		before, err := modelstest.FindUser(ctx, db, "user_a")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		for _, again := range []models.Snapshot{s, snap("user_a", 9, email("b@x.io"))} {
			if _, err := models.ApplySnapshot(ctx, db, again, models.SourceLogin); err != nil {
				t.Fatal(err)
			}
		}
		after, err := modelstest.FindUser(ctx, db, "user_a")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("row changed (-before +after):\n%s", diff)
		}
		if after.SyncSource != models.SourceWebhook {
			t.Errorf("sync_source = %q, want webhook", after.SyncSource)
		}
	})
}

func TestRawJSONIsStored(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := snap("user_a", 10, func(s *models.Snapshot) { s.RawJSON = `{"id": "user_a", "public_metadata": {"plan": "x"}}` })
		if _, err := models.ApplySnapshot(ctx, db, s, models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		var plan string
		q := "SELECT raw_json->'public_metadata'->>'plan' FROM users WHERE id = ?"
		if err := db.Raw(q, "user_a").Scan(&plan).Error; err != nil {
			t.Fatal(err)
		}
		if plan != "x" {
			t.Errorf("raw_json public_metadata.plan = %q, want x", plan)
		}
	})
}

// FindProfile reads the same row FindUser does, without raw_json.
func TestFindProfileMatchesFindUser(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := snap("user_a", 10, email("a@x.io"), tier("PRO"), func(s *models.Snapshot) { s.PhoneNumber = ptr("+1") })
		if _, err := models.ApplySnapshot(ctx, db, s, models.SourceLogin); err != nil {
			t.Fatal(err)
		}
		if _, err := models.Tombstone(ctx, db, "user_b", models.SourceWebhook); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"user_a", "user_b"} {
			full, err := modelstest.FindUser(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			profile, err := modelstest.FindProfile(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			full.RawJSON = nil
			if diff := cmp.Diff(full, profile); diff != "" {
				t.Errorf("%s (-FindUser +FindProfile):\n%s", id, diff)
			}
		}
		if _, err := modelstest.FindProfile(ctx, db, "nobody"); err != models.ErrNotFound {
			t.Errorf("unknown id: err = %v, want ErrNotFound", err)
		}
		// FindProfiles reads the same rows at once, with their (here no)
		// organizations; unknown ids are absent.
		many, err := models.FindProfiles(ctx, db, []string{"user_a", "nobody", "user_b", "user_a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(many) != 2 {
			t.Fatalf("FindProfiles found %d rows, want 2", len(many))
		}
		for _, id := range []string{"user_a", "user_b"} {
			one, err := modelstest.FindProfile(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			want := models.Profile{User: one, Organizations: []models.UserOrganization{}}
			if diff := cmp.Diff(want, many[id]); diff != "" {
				t.Errorf("%s (-FindProfile +FindProfiles):\n%s", id, diff)
			}
		}
	})
}

// Concurrent first snapshots of one user: exactly one of them created the
// row, whichever transaction read "no row" first.
func TestExactlyOneCreatedUnderConcurrency(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		for round := range 5 {
			id := fmt.Sprintf("user_%d", round)
			outcomes := make(chan models.Outcome, 8)
			var wg sync.WaitGroup
			for v := range 8 {
				wg.Go(func() {
					o, err := models.ApplySnapshot(context.Background(), db, snap(id, int64(v+1)), models.SourceLogin)
					if err != nil {
						t.Error(err)
					}
					outcomes <- o
				})
			}
			wg.Wait()
			close(outcomes)
			created := 0
			for o := range outcomes {
				if o == models.Created {
					created++
				}
			}
			if created != 1 {
				t.Errorf("round %d: %d snapshots report created, want 1", round, created)
			}
		}
	})
}
