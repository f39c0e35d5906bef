-- Wakes the outbox relay as soon as a transaction that wrote events commits, instead of
-- leaving them to its next poll. One notification per statement; PostgreSQL folds the
-- identical notifications of one transaction into one, delivered at commit.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ocop_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
