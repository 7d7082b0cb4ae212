package models

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// batchChunk is how many snapshots one multi-row statement carries (16
// columns each keeps it far below both databases' parameter limits).
const batchChunk = 500

// ApplySnapshots applies many snapshots in one transaction with exactly the
// rules of ApplySnapshot, as if each were applied in order, and returns each
// one's outcome. A chunk in which no two snapshots touch the same user or
// email, and no email is held by another row, is written with one
// multi-row upsert; any other chunk goes through ApplySnapshot's path one
// snapshot at a time, in order, inside the same transaction.
func ApplySnapshots(ctx context.Context, db *gorm.DB, snaps []Snapshot, src Source) ([]Outcome, error) {
	return inTx(ctx, db, func(tx *gorm.DB) ([]Outcome, error) {
		return applyBatch(tx, snaps, src, now())
	})
}

// errDryRun rolls back a transaction that only reports what it would do.
var errDryRun = errors.New("dry run")

// DryRunSnapshots reports what ApplySnapshots would do and writes nothing:
// it runs the same transaction and rolls it back.
func DryRunSnapshots(ctx context.Context, db *gorm.DB, snaps []Snapshot, src Source) ([]Outcome, error) {
	out, err := inTx(ctx, db, func(tx *gorm.DB) ([]Outcome, error) {
		out, err := applyBatch(tx, snaps, src, now())
		if err == nil {
			err = errDryRun
		}
		return out, err
	})
	if errors.Is(err, errDryRun) {
		return out, nil
	}
	return out, err
}

func applyBatch(tx *gorm.DB, snaps []Snapshot, src Source, at time.Time) ([]Outcome, error) {
	out := make([]Outcome, 0, len(snaps))
	for start := 0; start < len(snaps); start += batchChunk {
		chunk := snaps[start:min(start+batchChunk, len(snaps))]
		outcomes, err := applyChunk(tx, chunk, src, at)
		if err != nil {
			return nil, err
		}
		out = append(out, outcomes...)
	}
	return out, nil
}

func applyChunk(tx *gorm.DB, snaps []Snapshot, src Source, at time.Time) ([]Outcome, error) {
	norm := make([]Snapshot, len(snaps))
	for i, s := range snaps {
		norm[i] = s.normalized()
	}
	byID, byEmail, err := lockChunk(tx, norm)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(norm))
	var apply []int
	seenID, seenEmail := map[string]bool{}, map[string]bool{}
	for i, s := range norm {
		if seenID[s.ID] {
			return applyInOrder(tx, norm, src, at)
		}
		seenID[s.ID] = true
		if out[i] = verdict(byID[s.ID], s); out[i] != "" {
			continue
		}
		if s.Email != nil {
			holder, held := byEmail[*s.Email]
			if seenEmail[*s.Email] || (held && holder.ID != s.ID) {
				return applyInOrder(tx, norm, src, at)
			}
			seenEmail[*s.Email] = true
		}
		apply = append(apply, i)
	}
	toWrite := make([]Snapshot, len(apply))
	existed := make(map[string]bool, len(apply))
	for j, i := range apply {
		toWrite[j] = norm[i]
		existed[norm[i].ID] = byID[norm[i].ID] != nil
	}
	written, err := upsertMany(tx, toWrite, existed, src, at)
	if err != nil {
		return nil, err
	}
	if len(written) != len(apply) {
		return nil, errRaced // a row appeared after our read; run the chunk again
	}
	for _, i := range apply {
		out[i] = written[norm[i].ID]
	}
	return out, nil
}

// applyInOrder is the fallback for chunks whose snapshots interact.
func applyInOrder(tx *gorm.DB, snaps []Snapshot, src Source, at time.Time) ([]Outcome, error) {
	out := make([]Outcome, len(snaps))
	for i, s := range snaps {
		var err error
		if out[i], err = applySnapshot(tx, s, src, at); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockChunk reads (and on Postgres locks) the chunk's own rows and the live
// rows holding any of its emails.
func lockChunk(tx *gorm.DB, snaps []Snapshot) (byID, byEmail map[string]*User, err error) {
	ids := make([]string, 0, len(snaps))
	emails := make([]string, 0, len(snaps))
	for _, s := range snaps {
		ids = append(ids, s.ID)
		if s.Email != nil {
			emails = append(emails, *s.Email)
		}
	}
	q := tx.Select("id", "email", "clerk_updated_at", "deleted_at").Where("id IN ?", ids)
	if len(emails) > 0 {
		q = q.Or("email IN ? AND deleted_at IS NULL", emails)
	}
	if DialectOf(tx) == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var rows []User
	if err := q.Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("read %d users: %w", len(ids), err)
	}
	byID, byEmail = make(map[string]*User, len(rows)), make(map[string]*User, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
		if rows[i].Email != nil && !rows[i].Deleted() {
			byEmail[*rows[i].Email] = &rows[i]
		}
	}
	return byID, byEmail, nil
}

// upsertMany writes snapshots (already normalized) with multi-row upserts,
// one for those that name a tier and one for those that do not (rule 4
// differs), and returns what each written row underwent; rows not written
// are absent. existed says which rows a locking read found (SQLite needs
// it; on Postgres the statement reports it and existed may be nil).
func upsertMany(tx *gorm.DB, snaps []Snapshot, existed map[string]bool, src Source, at time.Time) (map[string]Outcome, error) {
	var groups [2][]User // without a tier, with one
	for _, s := range snaps {
		g := 0
		if s.Tier != "" {
			g = 1
		}
		groups[g] = append(groups[g], s.row(s.Email, src, at))
	}
	written := make(map[string]Outcome, len(snaps))
	for g, rows := range groups {
		if len(rows) == 0 {
			continue
		}
		w, err := upsertRows(tx, rows, g == 1, existed)
		if err != nil {
			return nil, err
		}
		maps.Copy(written, w)
	}
	return written, nil
}
