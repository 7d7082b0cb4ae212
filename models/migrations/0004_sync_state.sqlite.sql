-- Reconcile and the guard (contract sections 8 and 9), as 0004_sync_state.postgres.sql. SQLite cannot
-- change a CHECK constraint in place, so the three tables are rebuilt with
-- 'reconcile' allowed, keeping their rows and indexes.
CREATE TABLE users_new (
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
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile')),
    email_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    raw_json         $JSON,
    synced_at        $TIMESTAMP
);
INSERT INTO users_new SELECT * FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL AND email IS NOT NULL;

CREATE TABLE organizations_new (
    id               TEXT PRIMARY KEY,
    name             TEXT,
    slug             TEXT,
    image_url        TEXT,
    created_by       TEXT,
    tier             TEXT NOT NULL DEFAULT 'FREE',
    members_count    INTEGER,
    clerk_updated_at BIGINT NOT NULL,
    created_at       $TIMESTAMP NOT NULL,
    updated_at       $TIMESTAMP NOT NULL,
    deleted_at       $TIMESTAMP,
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile')),
    raw_json         $JSON
);
INSERT INTO organizations_new SELECT * FROM organizations;
DROP TABLE organizations;
ALTER TABLE organizations_new RENAME TO organizations;

CREATE TABLE organization_memberships_new (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL DEFAULT '',
    clerk_created_at BIGINT NOT NULL DEFAULT 0,
    clerk_updated_at BIGINT NOT NULL,
    created_at       $TIMESTAMP NOT NULL,
    updated_at       $TIMESTAMP NOT NULL,
    deleted_at       $TIMESTAMP,
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile')),
    raw_json         $JSON
);
INSERT INTO organization_memberships_new SELECT * FROM organization_memberships;
DROP TABLE organization_memberships;
ALTER TABLE organization_memberships_new RENAME TO organization_memberships;
CREATE INDEX organization_memberships_organization_id ON organization_memberships (organization_id);
CREATE INDEX organization_memberships_user_id ON organization_memberships (user_id);
CREATE UNIQUE INDEX organization_memberships_pair_live ON organization_memberships (organization_id, user_id)
    WHERE deleted_at IS NULL;

CREATE TABLE sync_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    clerk_instance_id    TEXT NOT NULL DEFAULT '',
    holder               TEXT NOT NULL DEFAULT '',
    claim_expires_at     BIGINT NOT NULL DEFAULT 0,
    last_started_at      BIGINT NOT NULL DEFAULT 0,
    last_success_at      BIGINT NOT NULL DEFAULT 0,
    last_full_success_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO sync_state (id) VALUES (1);
