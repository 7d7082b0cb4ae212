package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// year2100 is a Clerk updated_at no clock should ever send (ms).
var year2100 = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// apiSources are the paths that fetch snapshots from the Backend API.
var apiSources = []models.Source{models.SourceLogin, models.SourceBackfill, models.SourceReconcile}

// applyVia applies one snapshot alone, or as a batch of one.
func applyVia(t *testing.T, db *gorm.DB, s models.Snapshot, src models.Source, batched bool) models.Outcome {
	t.Helper()
	ctx := context.Background()
	if !batched {
		out, err := models.ApplySnapshot(ctx, db, s, src)
		if err != nil {
			t.Fatalf("apply %s from %s: %v", s.ID, src, err)
		}
		return out
	}
	out, err := models.Apply(ctx, db, modelstest.UserChanges([]models.Snapshot{s}), src)
	if err != nil {
		t.Fatalf("apply %s from %s: %v", s.ID, src, err)
	}
	return out[0]
}

func wantApplied(t *testing.T, db *gorm.DB, s models.Snapshot, src models.Source, batched bool, want models.Outcome) {
	t.Helper()
	if got := applyVia(t, db, s, src, batched); got != want {
		t.Fatalf("snapshot %s at %d from %s = %q, want %q", s.ID, s.UpdatedAt, src, got, want)
	}
}

func wantSource(t *testing.T, db *gorm.DB, id string, want models.Source) {
	t.Helper()
	u, err := modelstest.FindUser(context.Background(), db, id)
	if err != nil || u.SyncSource != want {
		t.Fatalf("%s: sync_source %q, err %v; want %q", id, u.SyncSource, err, want)
	}
}

// Rule 11: a row dated in 2100 (stored by an API path, which does not
// refuse it) answers webhooks stale, but the next snapshot from the Backend
// API replaces it whatever its updated_at, and ordering works again after.
func TestFutureDatedRowYieldsToTheAPI(t *testing.T) {
	const a = "user_a"
	past := time.Now().Add(-time.Hour).UnixMilli()
	for _, src := range apiSources {
		for _, batched := range []bool{false, true} {
			name := string(src)
			if batched {
				name += " (batched)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
					wantApplied(t, db, snap(a, year2100, email("a@x.io")), models.SourceBackfill, batched, models.Created)
					// The same snapshot again is no news (rule 7), even from the API.
					wantApplied(t, db, snap(a, year2100, email("a@x.io")), src, batched, models.Unchanged)
					wantApplied(t, db, snap(a, past, email("b@x.io")), models.SourceWebhook, batched, models.Stale)
					if diff := cmp.Diff([]rowView{live(a, year2100, ptr("a@x.io"), "FREE")}, tableView(t, db)); diff != "" {
						t.Fatalf("after a webhook (-want +got):\n%s", diff)
					}

					wantApplied(t, db, snap(a, past, email("c@x.io")), src, batched, models.Updated)
					if diff := cmp.Diff([]rowView{live(a, past, ptr("c@x.io"), "FREE")}, tableView(t, db)); diff != "" {
						t.Fatalf("after the API snapshot (-want +got):\n%s", diff)
					}
					wantSource(t, db, a, src)
					wantApplied(t, db, snap(a, past-1, email("old@x.io")), src, batched, models.Stale)
					wantApplied(t, db, snap(a, past+1, email("d@x.io")), models.SourceWebhook, batched, models.Updated)
					if diff := cmp.Diff([]rowView{live(a, past+1, ptr("d@x.io"), "FREE")}, tableView(t, db)); diff != "" {
						t.Errorf("after a newer webhook (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// Rule 11 leaves rule 5 alone: a tombstone dated in 2100 stays one, and a
// deletion of a row dated in 2100 keeps its clerk_updated_at.
func TestFutureDatedTombstoneStaysFinal(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		past := time.Now().Add(-time.Hour).UnixMilli()
		wantApplied(t, db, snap("user_a", year2100, email("a@x.io"), tier("PRO")), models.SourceLogin, false, models.Created)
		if got, err := models.Tombstone(ctx, db, "user_a", models.SourceBackfill); err != nil || got != models.Deleted {
			t.Fatalf("tombstone = %q, %v; want deleted", got, err)
		}
		for _, src := range append(apiSources, models.SourceWebhook) {
			wantApplied(t, db, snap("user_a", past, email("a@x.io")), src, false, models.Gone)
			wantApplied(t, db, snap("user_a", past, email("a@x.io")), src, true, models.Gone)
		}
		if diff := cmp.Diff([]rowView{tomb("user_a", year2100, "PRO")}, tableView(t, db)); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

// A batch that replaces a row dated in 2100 and then deletes it ends as the
// same two changes one at a time do.
func TestFutureDatedRowReplacedThenDeletedInOneBatch(t *testing.T) {
	past := time.Now().Add(-time.Hour).UnixMilli()
	changes := []models.Change{models.UserChange(snap("user_a", past, email("b@x.io"))), models.UserDeletion("user_a")}
	modelstest.EachPair(t, func(t *testing.T, batch, single *gorm.DB) {
		ctx := context.Background()
		for _, db := range []*gorm.DB{batch, single} {
			wantApplied(t, db, snap("user_a", year2100, email("a@x.io")), models.SourceBackfill, false, models.Created)
		}
		got, err := models.Apply(ctx, batch, changes, models.SourceReconcile)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			one, err := models.Apply(ctx, single, []models.Change{c}, models.SourceReconcile)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, one...)
		}
		want := []models.Outcome{models.Updated, models.Deleted, models.Updated, models.Deleted}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("outcomes, batched then one at a time (-want +got):\n%s", diff)
		}
		wantRows := []rowView{tomb("user_a", past, "FREE")}
		for name, db := range map[string]*gorm.DB{"batched": batch, "one at a time": single} {
			if diff := cmp.Diff(wantRows, tableView(t, db)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
	})
}

// Rule 3 with rule 11: a live row dated in 2100 holding an address loses it
// to an API snapshot of another user that claims it, whatever the order of
// their updated_at; against a webhook it keeps it.
func TestFutureDatedHolderLosesEmailToTheAPI(t *testing.T) {
	past := time.Now().Add(-time.Hour).UnixMilli()
	for _, src := range apiSources {
		for _, batched := range []bool{false, true} {
			name := string(src)
			if batched {
				name += " (batched)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
					wantApplied(t, db, snap("user_a", year2100, email("e@x.io")), models.SourceBackfill, batched, models.Created)
					wantApplied(t, db, snap("user_b", past, email("e@x.io")), models.SourceWebhook, batched, models.Created)
					want := []rowView{live("user_a", year2100, ptr("e@x.io"), "FREE"), live("user_b", past, nil, "FREE")}
					if diff := cmp.Diff(want, tableView(t, db)); diff != "" {
						t.Fatalf("after a webhook (-want +got):\n%s", diff)
					}
					wantApplied(t, db, snap("user_c", past, email("e@x.io")), src, batched, models.Created)
					want = []rowView{live("user_a", year2100, nil, "FREE"), live("user_b", past, nil, "FREE"),
						live("user_c", past, ptr("e@x.io"), "FREE")}
					if diff := cmp.Diff(want, tableView(t, db)); diff != "" {
						t.Errorf("after the API snapshot (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// The bound is 24 hours ahead of the clock: a row just under it still
// orders snapshots, one just over it does not.
func TestFutureBoundary(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		now := time.Now()
		under := now.Add(models.MaxClockSkew - time.Minute).UnixMilli()
		over := now.Add(models.MaxClockSkew + time.Minute).UnixMilli()
		past := now.Add(-time.Hour).UnixMilli()
		wantApplied(t, db, snap("user_under", under), models.SourceWebhook, false, models.Created)
		wantApplied(t, db, snap("user_over", over), models.SourceBackfill, false, models.Created)
		wantApplied(t, db, snap("user_under", past), models.SourceBackfill, false, models.Stale)
		wantApplied(t, db, snap("user_over", past), models.SourceBackfill, false, models.Updated)
		want := []rowView{live("user_over", past, nil, "FREE"), live("user_under", under, nil, "FREE")}
		if diff := cmp.Diff(want, tableView(t, db)); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

// CheckClock names what a webhook must refuse: any snapshot the event would
// apply dated beyond the bound, a membership's organization included; a
// deletion's own updated_at never.
func TestEventCheckClock(t *testing.T) {
	now := time.Now()
	ok := now.Add(models.MaxClockSkew - time.Minute).UnixMilli()
	over := now.Add(models.MaxClockSkew + time.Minute).UnixMilli()
	org := func(at int64) *models.OrgSnapshot { return &models.OrgSnapshot{ID: "org_1", UpdatedAt: at} }
	mem := func(at int64, o *models.OrgSnapshot) models.MembershipSnapshot {
		return models.MembershipSnapshot{ID: "orgmem_1", UpdatedAt: at, Org: o}
	}
	refused := func(object string) string {
		return fmt.Sprintf("%s: updated_at %d is more than 24h ahead of the clock", object, over)
	}
	for _, tc := range []struct {
		name string
		ev   models.Event
		want string
	}{
		{"user", models.Event{Kind: models.EventUpsert, Snapshot: snap("user_1", over)}, refused("user user_1")},
		{"user under the bound", models.Event{Kind: models.EventUpsert, Snapshot: snap("user_1", ok)}, ""},
		{"user deletion", models.Event{Kind: models.EventDelete, UserID: "user_1"}, ""},
		{"organization", models.Event{Kind: models.EventOrgUpsert, Org: *org(over)}, refused("organization org_1")},
		{"organization under the bound", models.Event{Kind: models.EventOrgUpsert, Org: *org(ok)}, ""},
		{"membership", models.Event{Kind: models.EventMembershipUpsert, Membership: mem(over, org(ok))}, refused("membership orgmem_1")},
		{"membership's organization", models.Event{Kind: models.EventMembershipUpsert, Membership: mem(ok, org(over))}, refused("organization org_1")},
		{"membership under the bound", models.Event{Kind: models.EventMembershipUpsert, Membership: mem(ok, org(ok))}, ""},
		{"membership deletion", models.Event{Kind: models.EventMembershipDelete, Membership: mem(over, nil)}, ""},
		{"membership deletion's organization", models.Event{Kind: models.EventMembershipDelete, Membership: mem(ok, org(over))}, refused("organization org_1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := tc.ev.CheckClock(now); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("CheckClock = %q, want %q", got, tc.want)
			}
		})
	}
}

// Rule 11 for organizations and memberships: rows dated in 2100 answer
// webhooks stale and yield to the next API snapshot, a membership's
// organization included; a tombstone stays one.
func TestFutureDatedOrgRowsYieldToTheAPI(t *testing.T) {
	const org, mem, user = "org_a", "orgmem_1", "user_1"
	past := time.Now().Add(-time.Hour).UnixMilli()
	for _, src := range apiSources {
		t.Run(string(src), func(t *testing.T) {
			t.Parallel()
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				apply := func(src models.Source, want []models.Outcome, changes ...models.Change) {
					t.Helper()
					got, err := models.Apply(context.Background(), db, changes, src)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("outcomes from %s (-want +got):\n%s", src, diff)
					}
				}
				// members_count is an integer column: orgSnap's default (updated_at) would not fit.
				orgAt := func(id string, at int64) models.OrgSnapshot {
					return orgSnap(id, at, func(s *models.OrgSnapshot) { s.MembersCount = ptr(int64(3)) })
				}
				orgRow := func(id string, at int64, src models.Source) orgView {
					v := liveOrg(id, at, "FREE")
					v.MembersCount, v.Source = ptr(int64(3)), src
					return v
				}
				upMembership := func(at int64, role string) []models.Change {
					return models.MembershipChanges(models.ApplyMembership, withOrg(memSnap(mem, org, user, 1, at, role), orgAt(org, at)))
				}
				apply(models.SourceBackfill, []models.Outcome{models.Created, models.Created}, upMembership(year2100, "org:member")...)
				apply(models.SourceWebhook, []models.Outcome{models.Stale, models.Stale}, upMembership(past, "org:admin")...)
				apply(src, []models.Outcome{models.Unchanged, models.Unchanged}, upMembership(year2100, "org:member")...)
				if diff := cmp.Diff([]orgView{orgRow(org, year2100, models.SourceBackfill)}, orgTable(t, db)); diff != "" {
					t.Fatalf("organizations after a webhook (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]memView{liveMem(mem, org, user, 1, year2100, "org:member")}, memTable(t, db)); diff != "" {
					t.Fatalf("memberships after a webhook (-want +got):\n%s", diff)
				}

				apply(src, []models.Outcome{models.Updated, models.Updated}, upMembership(past, "org:admin")...)
				replaced := orgRow(org, past, src)
				if diff := cmp.Diff([]orgView{replaced}, orgTable(t, db)); diff != "" {
					t.Errorf("organizations after the API snapshot (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]memView{liveMem(mem, org, user, 1, past, "org:admin")}, memTable(t, db)); diff != "" {
					t.Errorf("memberships after the API snapshot (-want +got):\n%s", diff)
				}
				apply(src, []models.Outcome{models.Stale}, models.Change{Kind: models.ApplyOrg, Org: orgAt(org, past-1)})

				// A tombstone dated in 2100 stays one.
				apply(models.SourceBackfill, []models.Outcome{models.Created}, models.Change{Kind: models.ApplyOrg, Org: orgAt("org_b", year2100)})
				apply(models.SourceWebhook, []models.Outcome{models.Deleted}, models.Change{Kind: models.DeleteOrg, Org: models.OrgSnapshot{ID: "org_b"}})
				apply(src, []models.Outcome{models.Gone}, models.Change{Kind: models.ApplyOrg, Org: orgAt("org_b", past)})
				tombstone := tombOrg("org_b", year2100, "FREE", ptr(int64(3)))
				if diff := cmp.Diff([]orgView{replaced, tombstone}, orgTable(t, db)); diff != "" {
					t.Errorf("organizations after the tombstone (-want +got):\n%s", diff)
				}
			})
		})
	}
}
