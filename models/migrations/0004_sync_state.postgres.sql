-- Reconcile and the guard (contract sections 8 and 9): 'reconcile' becomes a
-- sync_source, and one row holds the Clerk instance the database mirrors, the claim
-- that keeps reconcile passes to one replica at a time and where the last successful
-- passes started. Times are ms since the epoch, like clerk_updated_at.
ALTER TABLE users DROP CONSTRAINT users_sync_source_check,
    ADD CONSTRAINT users_sync_source_check CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile'));
ALTER TABLE organizations DROP CONSTRAINT organizations_sync_source_check,
    ADD CONSTRAINT organizations_sync_source_check CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile'));
ALTER TABLE organization_memberships DROP CONSTRAINT organization_memberships_sync_source_check,
    ADD CONSTRAINT organization_memberships_sync_source_check
    CHECK (sync_source IN ('webhook', 'login', 'backfill', 'reconcile'));

CREATE TABLE sync_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    clerk_instance_id    TEXT NOT NULL DEFAULT '',   -- the Clerk instance (ins_…) this database mirrors; '' until learned
    holder               TEXT NOT NULL DEFAULT '',   -- the replica whose claim it is
    claim_expires_at     BIGINT NOT NULL DEFAULT 0,  -- the claim lapses then unless renewed
    last_started_at      BIGINT NOT NULL DEFAULT 0,  -- the last pass's start, whatever its result
    last_success_at      BIGINT NOT NULL DEFAULT 0,  -- the last successful pass's start: where the next one may stop
    last_full_success_at BIGINT NOT NULL DEFAULT 0   -- the last successful full pass's start; 0: none yet
);
INSERT INTO sync_state (id) VALUES (1);
