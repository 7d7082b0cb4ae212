-- Organizations and who belongs to them (contract section 7). No foreign keys:
-- Clerk's events arrive in any order, and a membership may land before its user.
CREATE TABLE organizations (
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
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill')),
    raw_json         $JSON
);

CREATE TABLE organization_memberships (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL DEFAULT '',
    clerk_created_at BIGINT NOT NULL DEFAULT 0,
    clerk_updated_at BIGINT NOT NULL,
    created_at       $TIMESTAMP NOT NULL,
    updated_at       $TIMESTAMP NOT NULL,
    deleted_at       $TIMESTAMP,
    sync_source      TEXT NOT NULL CHECK (sync_source IN ('webhook', 'login', 'backfill')),
    raw_json         $JSON
);

CREATE INDEX organization_memberships_organization_id ON organization_memberships (organization_id);
CREATE INDEX organization_memberships_user_id ON organization_memberships (user_id);

-- Rule 10: one live membership per (organization, user).
CREATE UNIQUE INDEX organization_memberships_pair_live ON organization_memberships (organization_id, user_id)
    WHERE deleted_at IS NULL;
