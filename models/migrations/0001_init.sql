-- The users table mirrors Clerk; clerk_updated_at is the ordering key (contract rule 1).
-- $TIMESTAMP and $JSON are spelled per dialect by models.Migrate (timestamptz/jsonb on
-- Postgres, TIMESTAMP/TEXT on SQLite); everything else is the same SQL on both.
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    email            TEXT,
    first_name       TEXT,
    last_name        TEXT,
    image_url        TEXT,
    username         TEXT,
    phone_number     TEXT,
    tier             TEXT NOT NULL DEFAULT 'FREE',
    clerk_updated_at BIGINT NOT NULL,
    created_at       $TIMESTAMP NOT NULL,
    updated_at       $TIMESTAMP NOT NULL,
    deleted_at       $TIMESTAMP,
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill')),
    email_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    raw_json         $JSON,
    -- last time the row was confirmed against Clerk by an applied snapshot (login freshness)
    synced_at        $TIMESTAMP
);

-- Rule 3: among live rows an address belongs to one user.
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL AND email IS NOT NULL;

CREATE TABLE webhook_events (
    svix_id     TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    user_id     TEXT,
    outcome     TEXT NOT NULL,
    received_at $TIMESTAMP NOT NULL
);

CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
