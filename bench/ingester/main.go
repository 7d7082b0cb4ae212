// Command ingester is the yardstick bench/run.sh measures usersync against:
// a plain, tuned webhook ingester with none of the service's framework.
// net/http, encoding/json into a struct of the needed fields, Svix
// verification, pgx directly, and group commit: deliveries that arrive while
// a batch commits form the next one (at most 64, four batches at a time),
// each batch one transaction with one INSERT … SELECT FROM unnest per table,
// the user upsert guarded by clerk_updated_at (rule 1). It skips what the
// service does beyond that (email ownership, tombstones, tiers, metrics,
// logs), so it is a floor for the framework's cost, not a product.
//
//	go run ./bench/ingester -db postgres://… -addr 127.0.0.1:18081
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	svix "github.com/svix/svix-webhooks/go"
)

const (
	maxBatch = 64
	workers  = 4
)

type user struct {
	ID             string  `json:"id"`
	FirstName      *string `json:"first_name"`
	LastName       *string `json:"last_name"`
	ImageURL       *string `json:"image_url"`
	Username       *string `json:"username"`
	PrimaryEmailID *string `json:"primary_email_address_id"`
	Emails         []struct {
		ID    string `json:"id"`
		Email string `json:"email_address"`
	} `json:"email_addresses"`
	UpdatedAt int64 `json:"updated_at"`
}

type event struct {
	svixID, typ string
	u           user
	raw         string
	done        chan string // the outcome, or "" on failure
}

type ingester struct {
	db      *pgxpool.Pool
	wh      *svix.Webhook
	mu      sync.Mutex
	queue   []*event
	running int
}

func main() {
	dsn := flag.String("db", os.Getenv("DATABASE_URL"), "Postgres URL")
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	flag.Parse()
	wh, err := svix.NewWebhook(os.Getenv("CLERK_WEBHOOK_SIGNING_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(*dsn)
	if err != nil {
		log.Fatal(err)
	}
	cfg.MaxConns = 10
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	in := &ingester{db: db, wh: wh}
	srv := &http.Server{Addr: *addr, Handler: in, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func (in *ingester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.Write([]byte(`{"status":"ok"}`))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
		return
	}
	if err := in.wh.Verify(body, r.Header); err != nil {
		http.Error(w, `{"error":"invalid signature"}`, http.StatusBadRequest)
		return
	}
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	ev := &event{svixID: r.Header.Get("svix-id"), done: make(chan string, 1)}
	if json.Unmarshal(body, &env) != nil || json.Unmarshal(env.Data, &ev.u) != nil || ev.u.ID == "" {
		http.Error(w, `{"error":"not a Clerk event"}`, http.StatusBadRequest)
		return
	}
	ev.typ, ev.raw = env.Type, string(env.Data)
	in.submit(ev)
	outcome := <-ev.done
	if outcome == "" {
		http.Error(w, `{"error":"database unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"outcome":"` + outcome + `"}`))
}

func (in *ingester) submit(ev *event) {
	in.mu.Lock()
	in.queue = append(in.queue, ev)
	if in.running < workers {
		in.running++
		go in.drain()
	}
	in.mu.Unlock()
}

func (in *ingester) drain() {
	for {
		in.mu.Lock()
		n := min(len(in.queue), maxBatch)
		if n == 0 {
			in.running--
			in.mu.Unlock()
			return
		}
		batch := in.queue[:n:n]
		in.queue = in.queue[n:]
		in.mu.Unlock()
		in.commit(batch)
	}
}

const insertEvents = `INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at)
	SELECT e.id, e.typ, e.uid, 'applied', now() FROM unnest($1::text[], $2::text[], $3::text[]) AS e(id, typ, uid)
	ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id`

const upsertUsers = `INSERT INTO users (id, email, first_name, last_name, image_url, username, tier,
		clerk_updated_at, created_at, updated_at, sync_source, email_verified, raw_json, synced_at)
	SELECT u.id, u.email, u.first, u.last, u.image, u.username, 'FREE', u.updated, now(), now(), 'webhook',
		u.email IS NOT NULL, u.raw::jsonb, now()
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
		AS u(id, email, first, last, image, username, updated, raw)
	ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name,
		last_name = excluded.last_name, image_url = excluded.image_url, username = excluded.username,
		email_verified = excluded.email_verified, raw_json = excluded.raw_json,
		clerk_updated_at = excluded.clerk_updated_at, updated_at = excluded.updated_at,
		sync_source = excluded.sync_source, synced_at = excluded.synced_at
	WHERE users.clerk_updated_at < excluded.clerk_updated_at AND users.deleted_at IS NULL
	RETURNING id`

// commit records the batch's svix ids, upserts the users of the new ones
// (the newest per user), and answers each delivery once committed.
func (in *ingester) commit(batch []*event) {
	outcome := make(map[*event]string, len(batch))
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tx, err := in.db.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var ids, types, uids []string
		for _, ev := range batch {
			ids, types, uids = append(ids, ev.svixID), append(types, ev.typ), append(uids, ev.u.ID)
		}
		rows, _ := tx.Query(ctx, insertEvents, ids, types, uids)
		fresh := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			fresh[id] = true
		}
		if rows.Err() != nil {
			return rows.Err()
		}
		newest := map[string]*event{}
		for _, ev := range batch {
			outcome[ev] = "duplicate"
			if fresh[ev.svixID] && strings.HasPrefix(ev.typ, "user.") {
				outcome[ev] = "stale"
				if cur := newest[ev.u.ID]; cur == nil || cur.u.UpdatedAt < ev.u.UpdatedAt {
					newest[ev.u.ID] = ev
				}
				delete(fresh, ev.svixID) // a repeated id in one batch is a duplicate
			}
		}
		var text [5][]*string // email, first, last, image, username
		var uidList, raws []string
		var updated []int64
		for id, ev := range newest {
			uidList, updated, raws = append(uidList, id), append(updated, ev.u.UpdatedAt), append(raws, ev.raw)
			text[0] = append(text[0], primaryEmail(ev.u))
			text[1], text[2] = append(text[1], ev.u.FirstName), append(text[2], ev.u.LastName)
			text[3], text[4] = append(text[3], ev.u.ImageURL), append(text[4], ev.u.Username)
		}
		rows, _ = tx.Query(ctx, upsertUsers, uidList, text[0], text[1], text[2], text[3], text[4], updated, raws)
		written := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			written[id] = true
		}
		if rows.Err() != nil {
			return rows.Err()
		}
		for id, ev := range newest {
			if written[id] {
				outcome[ev] = "applied"
			}
		}
		return tx.Commit(ctx)
	}()
	for _, ev := range batch {
		if err != nil {
			log.Printf("batch failed: %v", err)
			ev.done <- ""
			continue
		}
		ev.done <- outcome[ev]
	}
}

func primaryEmail(u user) *string {
	for _, e := range u.Emails {
		if u.PrimaryEmailID != nil && e.ID == *u.PrimaryEmailID {
			l := strings.ToLower(e.Email)
			return &l
		}
	}
	return nil
}
