package models_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

// The reconcile claim: one holder at a time, spaced passes, a lapsed claim
// passes on, and a holder that lost it records nothing.
func TestReconcileClaim(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		t0 := time.UnixMilli(1_800_000_000_000)
		claim := func(holder string, at time.Time) bool {
			t.Helper()
			ok, err := models.ClaimReconcile(ctx, db, models.Claim{Holder: holder, Now: at, TTL: time.Minute, Spacing: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !claim("a", t0) {
			t.Fatal("a could not claim a free state")
		}
		if claim("b", t0.Add(40*time.Second)) {
			t.Error("b claimed while a's claim was live")
		}
		if err := models.RenewReconcile(ctx, db, "a", t0.Add(50*time.Second), time.Minute); err != nil {
			t.Fatal(err)
		}
		if claim("b", t0.Add(100*time.Second)) {
			t.Error("b claimed a renewed claim")
		}
		// a stops renewing (it died): after the TTL the claim is b's.
		b := t0.Add(120 * time.Second)
		if !claim("b", b) {
			t.Fatal("b could not take a lapsed claim")
		}
		if err := models.RenewReconcile(ctx, db, "a", b, time.Minute); !errors.Is(err, models.ErrClaimLost) {
			t.Errorf("a renewing a lost claim: %v, want ErrClaimLost", err)
		}
		if err := models.FinishReconcile(ctx, db, "a", t0, true, true); !errors.Is(err, models.ErrClaimLost) {
			t.Errorf("a finishing after losing the claim: %v, want ErrClaimLost", err)
		}
		st, _ := models.ReadReconcileState(ctx, db)
		if st.Holder != "b" || st.LastSuccessAt != 0 || st.LastStartedAt != b.UnixMilli() {
			t.Fatalf("state = %+v, want b holding, nothing recorded by a", st)
		}
		if err := models.FinishReconcile(ctx, db, "b", b, false, true); err != nil {
			t.Fatal(err)
		}
		st, _ = models.ReadReconcileState(ctx, db)
		want := models.ReconcileState{LastStartedAt: b.UnixMilli(), LastSuccessAt: b.UnixMilli()}
		if st != want {
			t.Fatalf("after b's incremental pass: %+v, want %+v", st, want)
		}
		// Released, but the next pass waits for the spacing.
		if claim("a", b.Add(20*time.Second)) {
			t.Error("a claimed 20 s after the last pass began (spacing 30 s)")
		}
		if !claim("a", b.Add(31*time.Second)) {
			t.Error("a could not claim after the spacing")
		}
		if err := models.FinishReconcile(ctx, db, "a", b.Add(31*time.Second), true, false); err != nil {
			t.Fatal(err)
		}
		if st, _ = models.ReadReconcileState(ctx, db); st.LastSuccessAt != b.UnixMilli() || st.LastFullSuccessAt != 0 || st.Holder != "" {
			t.Errorf("after a failed pass: %+v, want the claim released and nothing recorded", st)
		}
	})
}

// Replicas racing for the claim: exactly one wins each round.
func TestReconcileClaimRace(t *testing.T) {
	modelstest.EachWithPooler(t, func(t *testing.T, db *gorm.DB) {
		t0 := time.UnixMilli(1_800_000_000_000)
		for round := range 5 {
			at := t0.Add(time.Duration(round) * time.Hour)
			var won atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Go(func() {
					ok, err := models.ClaimReconcile(context.Background(), db, models.Claim{
						Holder: string(rune('a' + i)), Now: at, TTL: time.Minute, Spacing: time.Minute})
					if err != nil {
						errs <- err
					}
					if ok {
						won.Add(1)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if won.Load() != 1 {
				t.Fatalf("round %d: %d replicas won the claim, want 1", round, won.Load())
			}
		}
	})
}
