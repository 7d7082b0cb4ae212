package models_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/usersync/usersync/models"
	"github.com/usersync/usersync/models/modelstest"
)

func insertEvent(id string) string {
	return `INSERT INTO webhook_events (svix_id, event_type, outcome, received_at)
		VALUES ('` + id + `', 'user.created', 'applied', CURRENT_TIMESTAMP) RETURNING svix_id`
}

// A transaction whose rounds are pgx batches (its BEGIN sent with the first
// one) commits all of its statements or none, whether they came in rounds
// or from GORM, and leaves no pooled connection inside a transaction.
func TestPgTxCommitsAllOrNothing(t *testing.T) {
	modelstest.EachPostgres(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		boom := errors.New("boom")
		run := func(fn func(tx *gorm.DB) error) error {
			t.Helper()
			ok, err := models.RunPgTx(ctx, db, fn)
			if !ok {
				t.Fatal("RunPgTx did not run on Postgres")
			}
			return err
		}
		cases := []struct {
			name    string
			fn      func(tx *gorm.DB) error
			wantErr string // "" for none
		}{
			{"round then commit", func(tx *gorm.DB) error {
				_, err := models.SendRound(tx, insertEvent("commit"))
				return err
			}, ""},
			{"round then failure", func(tx *gorm.DB) error {
				if _, err := models.SendRound(tx, insertEvent("fail")); err != nil {
					return err
				}
				return boom
			}, "boom"},
			// A failed statement aborts the transaction even if the error
			// were ignored: the commit then reports Postgres' rollback.
			{"failed statement ignored", func(tx *gorm.DB) error {
				_, err := models.SendRound(tx, insertEvent("ignored"), "SELECT (1 / 0)::text")
				if err == nil || !strings.Contains(err.Error(), "query 1: ") || !strings.Contains(err.Error(), "division by zero") {
					t.Errorf("round error = %v, want query 1's division by zero", err)
				}
				return nil
			}, "commit: answered ROLLBACK"},
			// Statements sent at commit go in the COMMIT's round trip.
			{"round at commit", func(tx *gorm.DB) error {
				_, err := models.SendRoundAtCommit(tx, insertEvent("at_commit"))
				return err
			}, ""},
			// A failed write check (usersync_written, migration 0003) in the
			// COMMIT's round trip keeps the COMMIT from committing, and is
			// the serialization failure the write path retries.
			{"round at commit, check fails", func(tx *gorm.DB) error {
				_, err := models.SendRoundAtCommit(tx, insertEvent("checked"),
					"SELECT usersync_written(1, 2, 'written')::text")
				return err
			}, "usersync: 1 of 2 rows written"},
			// A statement not sent at commit takes the waiting ones along
			// first, in order.
			{"round at commit, then a round and a failure", func(tx *gorm.DB) error {
				if _, err := models.SendRoundAtCommit(tx, insertEvent("waiting")); err != nil {
					return err
				}
				got, err := models.SendRound(tx, `SELECT svix_id FROM webhook_events WHERE svix_id = 'waiting'`)
				if err == nil && len(got[0]) != 1 {
					t.Errorf("the statement waiting for the commit had not run before the next round: %v", got)
				}
				if err != nil {
					return err
				}
				return boom
			}, "boom"},
			{"GORM statement first, then failure", func(tx *gorm.DB) error {
				if err := tx.Exec(strings.TrimSuffix(insertEvent("gorm"), " RETURNING svix_id")).Error; err != nil {
					return err
				}
				if _, err := models.SendRound(tx, insertEvent("gorm_round")); err != nil {
					return err
				}
				return boom
			}, "boom"},
		}
		for _, c := range cases {
			err := run(c.fn)
			if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.wantErr)
			}
			var pgErr *pgconn.PgError
			if strings.Contains(c.wantErr, "usersync:") && (!errors.As(err, &pgErr) || pgErr.Code != "40001") {
				t.Errorf("%s: err = %v, want SQLSTATE 40001 (serialization_failure)", c.name, err)
			}
		}
		var ids []string
		if err := db.Model(&models.WebhookEvent{}).Order("svix_id").Pluck("svix_id", &ids).Error; err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"at_commit", "commit"}, ids); diff != "" {
			t.Errorf("committed events (-want +got):\n%s", diff)
		}
		// No connection of the database was left inside a transaction.
		var open int
		err := db.Raw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open).Error
		if err != nil {
			t.Fatal(err)
		}
		if open != 0 {
			t.Errorf("%d connections were left inside a transaction", open)
		}
	})
}

// A pgTx plans with indexes and keeps its plans: the write path's read,
// prepared while the table is empty, is planned as index scans, not as the
// sequential scan it gets with sequential scans allowed, which would stay
// while the table grows. Its settings hold
// in a transaction begun by a GORM statement too.
func TestRoundsPlanWithIndexes(t *testing.T) {
	modelstest.EachPostgres(t, func(t *testing.T, db *gorm.DB) {
		const settings = "SELECT current_setting('enable_seqscan') || ' ' || current_setting('plan_cache_mode')"
		var got [][]string
		ok, err := models.RunPgTx(context.Background(), db, func(tx *gorm.DB) error {
			var err error
			// The same generic plan with sequential scans allowed (queries
			// 2–4), then as the pgTx plans (5–7).
			explain := []string{
				"PREPARE read_users(text[], text[]) AS " + models.ReadUsersSQL,
				"EXPLAIN EXECUTE read_users('{user_1}', '{a@example.com}')",
				"DEALLOCATE read_users",
			}
			got, err = models.SendRound(tx, append(append(append([]string{settings,
				"SELECT set_config('enable_seqscan', 'on', true)"}, explain...),
				"SELECT set_config('enable_seqscan', 'off', true)"), explain...)...)
			return err
		})
		if !ok {
			t.Fatal("RunPgTx did not run on Postgres")
		}
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"off force_generic_plan"}, got[0]); diff != "" {
			t.Errorf("settings (-want +got):\n%s", diff)
		}
		if allowed := strings.Join(got[3], "\n"); !strings.Contains(allowed, "Seq Scan") {
			t.Errorf("with sequential scans allowed, the generic plan on an empty table has none; "+
				"the settings guard nothing:\n%s", allowed)
		}
		plan := strings.Join(got[7], "\n")
		if strings.Count(plan, "Index") < 2 || strings.Contains(plan, "Seq Scan") {
			t.Errorf("the read's plan on an empty table is not two index scans:\n%s", plan)
		}

		var viaGORM string
		_, err = models.RunPgTx(context.Background(), db, func(tx *gorm.DB) error {
			return tx.Raw(settings).Scan(&viaGORM).Error
		})
		if err != nil || viaGORM != "off force_generic_plan" {
			t.Errorf("settings after a GORM statement's BEGIN = %q, %v", viaGORM, err)
		}

		// The profile reads run without BEGIN or COMMIT, in the implicit
		// transaction of their one batch: the settings hold for it alone.
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1) // the next statement gets the same connection
		got, err = models.ReadRound(context.Background(), db, settings, "SELECT 1")
		if err != nil {
			t.Fatal(err)
		}
		var after string
		if err := db.Raw(settings).Scan(&after).Error; err != nil {
			t.Fatal(err)
		}
		if got[0][0] != "off force_generic_plan" || after != "on auto" {
			t.Errorf("settings in a read round %q, after it %q; want them in it only", got[0][0], after)
		}
	})
}

// On SQLite a transaction is GORM's own, and a round runs its statements
// one after another in it.
func TestSQLiteRoundsRunInGORMTransactions(t *testing.T) {
	db := modelstest.New(t, models.SQLite)
	ok, err := models.RunPgTx(context.Background(), db, func(*gorm.DB) error { return nil })
	if ok || err != nil {
		t.Fatalf("RunPgTx on SQLite = %v, %v; want false, nil", ok, err)
	}
	err = db.Transaction(func(tx *gorm.DB) error {
		got, err := models.SendRound(tx, insertEvent("a"), insertEvent("b"))
		if diff := cmp.Diff([][]string{{"a"}, {"b"}}, got); diff != "" {
			t.Errorf("rows (-want +got):\n%s", diff)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
