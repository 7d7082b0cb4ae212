package models_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func upsertEvent(svixID string, s models.Snapshot) models.Event {
	return models.Event{SvixID: svixID, Type: "user.updated", Kind: models.EventUpsert, UserID: s.ID, Snapshot: s}
}

func TestProcessEventOutcomes(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		steps := []struct {
			ev   models.Event
			want models.EventOutcome
		}{
			{upsertEvent("msg_1", snap("user_a", 10, email("a@x.io"))), models.EventApplied},
			{upsertEvent("msg_1", snap("user_a", 10, email("a@x.io"))), models.EventDuplicate},
			{upsertEvent("msg_2", snap("user_a", 5)), models.EventStale},
			{upsertEvent("msg_3", snap("user_a", 10)), models.EventStale},
			{models.Event{SvixID: "msg_4", Type: "session.created", Kind: models.EventIgnore}, models.EventIgnored},
			{models.Event{SvixID: "msg_5", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_a"}, models.EventApplied},
			{models.Event{SvixID: "msg_6", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_a"}, models.EventStale},
			{upsertEvent("msg_7", snap("user_a", 50)), models.EventStale},
			// A duplicate id is a duplicate whatever its payload: nothing is applied.
			{upsertEvent("msg_2", snap("user_b", 99)), models.EventDuplicate},
		}
		for i, st := range steps {
			res, err := modelstest.ProcessEvent(ctx, db, st.ev)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if got := res.Outcome; got != st.want {
				t.Errorf("step %d (%s) outcome = %q, want %q", i, st.ev.SvixID, got, st.want)
			}
		}
		var events []models.WebhookEvent
		if err := db.Order("svix_id").Find(&events).Error; err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			uid := ""
			if e.UserID != nil {
				uid = *e.UserID
			}
			got = append(got, fmt.Sprintf("%s %s %s %s", e.SvixID, e.EventType, uid, e.Outcome))
		}
		want := []string{
			"msg_1 user.updated user_a applied",
			"msg_2 user.updated user_a stale",
			"msg_3 user.updated user_a stale",
			"msg_4 session.created  ignored",
			"msg_5 user.deleted user_a applied",
			"msg_6 user.deleted user_a stale",
			"msg_7 user.updated user_a stale",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("webhook_events (-want +got):\n%s", diff)
		}
		if _, err := modelstest.FindUser(ctx, db, "user_b"); err != models.ErrNotFound {
			t.Errorf("user_b from a duplicate svix id: err = %v, want ErrNotFound", err)
		}
	})
}

// Hundreds of shuffled, duplicated events for a few users, from many
// goroutines: the table ends at the newest snapshot per user, each svix id is
// recorded once, and every delivery gets an answer.
func TestProcessEventConcurrent(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		const users, versions, copies, workers = 5, 40, 3, 24
		var events []models.Event
		want := map[string]int64{}
		for u := range users {
			id := fmt.Sprintf("user_%d", u)
			for v := 1; v <= versions; v++ {
				s := snap(id, int64(v), email(fmt.Sprintf("%s.v%d@x.io", id, v%4)))
				for range copies {
					events = append(events, upsertEvent(fmt.Sprintf("msg_%s_%d", id, v), s))
				}
			}
			want[id] = versions
		}
		// user_0 is deleted midway: the tombstone must win over every later version.
		for range copies {
			events = append(events, models.Event{SvixID: "msg_del", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_0"})
		}
		rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

		outcomes := runConcurrently(t, db, events, workers)
		if n := outcomes[models.EventDuplicate]; n != (users*versions+1)*(copies-1) {
			t.Errorf("duplicates = %d, want %d (%v)", n, (users*versions+1)*(copies-1), outcomes)
		}
		var count int64
		if err := db.Model(&models.WebhookEvent{}).Count(&count).Error; err != nil {
			t.Fatal(err)
		}
		if count != users*versions+1 {
			t.Errorf("webhook_events rows = %d, want %d", count, users*versions+1)
		}
		for id, v := range want {
			u, err := modelstest.FindUser(context.Background(), db, id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if id == "user_0" {
				if !u.Deleted() || u.Email != nil {
					t.Errorf("user_0 = deleted %v email %v, want a tombstone", u.Deleted(), u.Email)
				}
				continue
			}
			wantEmail := fmt.Sprintf("%s.v%d@x.io", id, v%4)
			if u.ClerkUpdatedAt != v || u.Email == nil || *u.Email != wantEmail || u.Deleted() {
				t.Errorf("%s = (%d, %v, deleted %v), want (%d, %s, live)", id, u.ClerkUpdatedAt, u.Email, u.Deleted(), v, wantEmail)
			}
		}
	})
}

// Two users fight over one address from many goroutines: the live-email index
// holds throughout and the newest claim owns the address at the end.
func TestEmailContentionConcurrent(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		var events []models.Event
		for v := 1; v <= 60; v++ {
			id := []string{"user_a", "user_b"}[v%2]
			events = append(events, upsertEvent(fmt.Sprintf("msg_%d", v), snap(id, int64(v), email("Shared@x.io"))))
		}
		rand.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		runConcurrently(t, db, events, 16)

		rows := tableView(t, db)
		want := []rowView{live("user_a", 60, ptr("shared@x.io"), "FREE"), live("user_b", 59, nil, "FREE")}
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
}

func runConcurrently(t *testing.T, db *gorm.DB, events []models.Event, workers int) map[models.EventOutcome]int {
	t.Helper()
	var (
		mu       sync.Mutex
		outcomes = map[models.EventOutcome]int{}
		wg       sync.WaitGroup
		next     = make(chan models.Event)
	)
	for range workers {
		wg.Go(func() {
			for ev := range next {
				res, err := modelstest.ProcessEvent(context.Background(), db, ev)
				if err != nil {
					t.Errorf("%s: %v", ev.SvixID, err)
				}
				mu.Lock()
				outcomes[res.Outcome]++
				mu.Unlock()
			}
		})
	}
	for _, ev := range events {
		next <- ev
	}
	close(next)
	wg.Wait()
	return outcomes
}

// A batch gives the same answers, users and event log as its events
// processed one at a time, whichever path it takes: independent upserts
// (the fast path on Postgres), an email another row holds (the fast path
// fails on the unique index and the batch runs again with the full rules),
// deletions, ignored types and repeated svix ids.
func TestProcessEventsEqualsOneAtATime(t *testing.T) {
	batches := map[string][]models.Event{
		"independent upserts": {
			upsertEvent("m1", snap("user_a", 5, email("a@x.io"))),
			upsertEvent("m2", snap("user_b", 5, email("b@x.io"), tier("pro"))),
			upsertEvent("m3", snap("user_c", 1)), // older than its row
			{SvixID: "m4", Type: "session.created", Kind: models.EventIgnore},
			upsertEvent("m5", snap("user_d", 9)), // a tombstone
		},
		"email held by an older row": {
			upsertEvent("m1", snap("user_a", 5, email("held@x.io"))),
			upsertEvent("m2", snap("user_b", 5, email("b@x.io"))),
		},
		"addresses change hands within the batch": {
			upsertEvent("m1", snap("user_c", 9, email("held@x.io"))), // user_x (3) gives it up
			upsertEvent("m2", snap("user_x", 10, email("x2@x.io"))),
			upsertEvent("m3", snap("user_x", 11, email("held@x.io"))), // and takes it back
			{SvixID: "m4", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_x"},
			upsertEvent("m5", snap("user_f", 2, email("held@x.io"))), // now free
		},
		"email held by a newer row": {
			upsertEvent("m1", snap("user_b", 1, email("held@x.io"))),
		},
		"interacting events": {
			upsertEvent("m1", snap("user_a", 5, email("a@x.io"))),
			upsertEvent("m2", snap("user_a", 6, email("a2@x.io"))),
			upsertEvent("m1", snap("user_a", 7)), // repeated svix id
			{SvixID: "m3", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_b"},
			upsertEvent("m4", snap("user_c", 8, email("held@x.io"))),
			upsertEvent("seen", snap("user_e", 8)), // recorded before the batch
		},
	}
	prepare := func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		for _, ev := range []models.Event{
			upsertEvent("seen", snap("user_e", 1)),
			upsertEvent("p1", snap("user_c", 3)),
			upsertEvent("p2", snap("user_x", 3, email("held@x.io"))),
			{SvixID: "p3", Type: "user.deleted", Kind: models.EventDelete, UserID: "user_d"},
		} {
			if _, err := modelstest.ProcessEvent(ctx, db, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, batch := range batches {
		t.Run(name, func(t *testing.T) {
			modelstest.EachPair(t, func(t *testing.T, one, together *gorm.DB) {
				prepare(t, one)
				prepare(t, together)
				var want []models.EventResult
				for _, ev := range batch {
					r, err := modelstest.ProcessEvent(context.Background(), one, ev)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, r)
				}
				got, err := models.ProcessEvents(context.Background(), together, batch)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("results (-one at a time +batch):\n%s", diff)
				}
				if diff := cmp.Diff(tableView(t, one), tableView(t, together)); diff != "" {
					t.Errorf("users (-one at a time +batch):\n%s", diff)
				}
				if diff := cmp.Diff(eventLog(t, one), eventLog(t, together)); diff != "" {
					t.Errorf("webhook_events (-one at a time +batch):\n%s", diff)
				}
			})
		})
	}
}

func eventLog(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var events []models.WebhookEvent
	if err := db.Order("svix_id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, fmt.Sprintf("%s %s %s", e.SvixID, e.EventType, e.Outcome))
	}
	return out
}
