-- usersync_written fails the statement that calls it when a write of the
-- write path changed other rows than it was given (fewer written, or one
-- updated that it meant to insert): another transaction changed one of them
-- after this one read it. The write path sends its writes and the COMMIT in
-- one round trip, so the check has to stop the COMMIT in SQL: a failed
-- statement makes Postgres skip the rest of the round, and the transaction
-- rolls back. serialization_failure (40001) is the code the service retries,
-- reading under row locks the next time.
CREATE FUNCTION usersync_written(got bigint, want bigint, what text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF got <> want THEN
        RAISE EXCEPTION 'usersync: % of % rows %; another transaction changed one after it was read',
            got, want, what USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN got;
END
$$;
