-- The write engine serializes its batches with advisory locks instead of
-- checking its writes after the fact, so the check function of 0003 goes.
DROP FUNCTION IF EXISTS usersync_written(bigint, bigint, text);
