-- Transactional outbox: an event row commits with the state change that caused it; the
-- relay publishes rows in `seq` order and stamps `published_at`.
CREATE TABLE outbox (
    seq           BIGSERIAL PRIMARY KEY,
    id            UUID        NOT NULL UNIQUE,   -- ce_id, the consumers' dedupe key
    topic         TEXT        NOT NULL,
    key           TEXT        NOT NULL,          -- partition key: order id or product id
    ce_type       TEXT        NOT NULL,
    ce_source     TEXT        NOT NULL,
    ce_subject    TEXT,
    ce_time       TIMESTAMPTZ NOT NULL,
    payload       BYTEA       NOT NULL,          -- the protobuf message
    trace_headers JSONB       NOT NULL DEFAULT '[]'::jsonb,  -- W3C context of the writer
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Inbox: one row per (consumer group, event) whose effect has committed, written in the
-- same transaction as the effect, so a redelivered event has no second effect.
CREATE TABLE inbox (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    event_type   TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
