package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// ReconcileState is the reconcile part of sync_state's one row: who holds
// the claim to run passes, and where the last passes started. Times are ms since the
// epoch; 0 means never.
type ReconcileState struct {
	Holder            string
	ClaimExpiresAt    int64
	LastStartedAt     int64
	LastSuccessAt     int64 // the last successful pass's start, incremental or full
	LastFullSuccessAt int64
}

// ReadReconcileState reads the reconcile state.
func ReadReconcileState(ctx context.Context, db *gorm.DB) (ReconcileState, error) {
	var st ReconcileState
	err := db.WithContext(ctx).Raw(`SELECT holder, claim_expires_at, last_started_at, last_success_at, last_full_success_at
		FROM sync_state WHERE id = 1`).Row().Scan(&st.Holder, &st.ClaimExpiresAt, &st.LastStartedAt,
		&st.LastSuccessAt, &st.LastFullSuccessAt)
	return st, err
}

// Claim is one attempt to take the right to run the next reconcile pass.
type Claim struct {
	Holder string        // this replica's name
	Now    time.Time     // the holder's clock
	TTL    time.Duration // the claim lapses this long after Now unless renewed
	// Spacing is the least time since the last pass began: a replica whose
	// timer fires just after another replica's pass does not run one more.
	Spacing time.Duration
}

// ClaimReconcile takes the claim when nobody holds it (or its holder let it
// lapse) and the last pass began at least Spacing ago, and records Now as
// the start of a pass. It is one UPDATE of one row, so it works through a
// transaction pooler, where a session advisory lock would not; a holder
// that dies loses the claim when its TTL runs out.
func ClaimReconcile(ctx context.Context, db *gorm.DB, c Claim) (bool, error) {
	now := c.Now.UnixMilli()
	res := db.WithContext(ctx).Exec(`UPDATE sync_state SET holder = ?, claim_expires_at = ?, last_started_at = ?
		WHERE id = 1 AND (holder = '' OR holder = ? OR claim_expires_at < ?) AND last_started_at <= ?`,
		c.Holder, c.Now.Add(c.TTL).UnixMilli(), now, c.Holder, now, c.Now.Add(-c.Spacing).UnixMilli())
	return res.RowsAffected == 1, res.Error
}

// ErrClaimLost means another replica took the claim (this one let it lapse).
var ErrClaimLost = errors.New("the reconcile claim passed to another replica")

// RenewReconcile extends the holder's claim to now+ttl while its pass runs.
func RenewReconcile(ctx context.Context, db *gorm.DB, holder string, now time.Time, ttl time.Duration) error {
	res := db.WithContext(ctx).Exec(`UPDATE sync_state SET claim_expires_at = ? WHERE id = 1 AND holder = ?`,
		now.Add(ttl).UnixMilli(), holder)
	if res.Error == nil && res.RowsAffected != 1 {
		return ErrClaimLost
	}
	return res.Error
}

// FinishReconcile releases the holder's claim and, when its pass succeeded,
// records the pass's start as where the next incremental pass may stop
// (and, for a full pass, when the last full pass began). A holder that lost
// the claim records nothing.
func FinishReconcile(ctx context.Context, db *gorm.DB, holder string, started time.Time, full, succeeded bool) error {
	q := `UPDATE sync_state SET holder = '', claim_expires_at = 0 WHERE id = 1 AND holder = ?`
	args := []any{holder}
	switch {
	case succeeded && full:
		q = `UPDATE sync_state SET holder = '', claim_expires_at = 0, last_success_at = ?, last_full_success_at = ?
			WHERE id = 1 AND holder = ?`
		args = []any{started.UnixMilli(), started.UnixMilli(), holder}
	case succeeded:
		q = `UPDATE sync_state SET holder = '', claim_expires_at = 0, last_success_at = ? WHERE id = 1 AND holder = ?`
		args = []any{started.UnixMilli(), holder}
	}
	res := db.WithContext(ctx).Exec(q, args...)
	if res.Error == nil && res.RowsAffected != 1 {
		return ErrClaimLost
	}
	return res.Error
}

// LastAppliedWebhook is when a webhook delivery last changed a row, as
// webhook_events records it (zero if none is recorded).
func LastAppliedWebhook(ctx context.Context, db *gorm.DB) (time.Time, error) {
	var at []time.Time
	err := db.WithContext(ctx).Raw(`SELECT received_at FROM webhook_events WHERE outcome = ?
		ORDER BY received_at DESC LIMIT 1`, string(EventApplied)).Scan(&at).Error
	if err != nil || len(at) == 0 {
		return time.Time{}, err
	}
	return at[0], nil
}

// FutureDatedUsers lists up to limit live users whose clerk_updated_at lies
// beyond FutureBound(now): rows no webhook may correct (rule 11), which an
// incremental pass fetches by id whatever their real updated_at.
func FutureDatedUsers(ctx context.Context, db *gorm.DB, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := db.WithContext(ctx).Raw(`SELECT id FROM users WHERE clerk_updated_at > ? AND deleted_at IS NULL ORDER BY id LIMIT ?`,
		FutureBound(now), limit).Scan(&ids).Error
	return ids, err
}
