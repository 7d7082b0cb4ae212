-- The durable ceiling for one webhook event: what Postgres itself does for the
-- same work, as pgbench sees it. One transaction upserts the user with the
-- ordering guard (a ~1.4 KB jsonb payload, like a Clerk user object) and records
-- the svix-id, and commits with fsync. Used by bench/run.sh, after
-- bench/pgbench_setup.sql (pgbench would read the JSON's colons as variables):
--   pgbench -n -M prepared -c 32 -j 2 -T 10 -f bench/pgbench_webhook.sql DBURL
\set uid random(1, 100000)
BEGIN;
INSERT INTO users (id, email, first_name, last_name, image_url, username, phone_number, tier,
                   clerk_updated_at, created_at, updated_at, sync_source, email_verified, raw_json, synced_at)
VALUES ('user_2pgb' || :uid, 'pgb' || :uid || '@example.com', 'Load', 'Tester', 'https://img.clerk.com/x',
        NULL, NULL, 'FREE', (extract(epoch from clock_timestamp()) * 1000000)::bigint, now(), now(),
        'webhook', true, bench_payload()::jsonb, now())
ON CONFLICT (id) DO UPDATE SET
    email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
    image_url = excluded.image_url, username = excluded.username, phone_number = excluded.phone_number,
    email_verified = excluded.email_verified, raw_json = excluded.raw_json,
    clerk_updated_at = excluded.clerk_updated_at, updated_at = excluded.updated_at,
    sync_source = excluded.sync_source, synced_at = excluded.synced_at
WHERE users.clerk_updated_at < excluded.clerk_updated_at AND users.deleted_at IS NULL;
INSERT INTO webhook_events (svix_id, event_type, user_id, outcome, received_at)
VALUES ('msg_' || gen_random_uuid(), 'user.updated', 'user_2pgb' || :uid, 'applied', now());
END;
