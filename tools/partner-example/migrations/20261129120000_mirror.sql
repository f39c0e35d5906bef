-- The partner's own store: what it mirrors and follows, and the events already applied.

-- The catalogue as of the newest snapshot seen per product.
CREATE TABLE mirrored_products (
    id           TEXT PRIMARY KEY,
    sku          TEXT NOT NULL,
    name         TEXT NOT NULL,
    price_vnd    BIGINT NOT NULL,
    available    BIGINT NOT NULL,
    status       TEXT NOT NULL,
    producer     TEXT NOT NULL,
    district     TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Orders followed from the partner topic, as of their newest event.
CREATE TABLE followed_orders (
    id                 TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    sales_channel      TEXT NOT NULL,
    total_vnd          BIGINT NOT NULL,
    delivery_province  TEXT NOT NULL,
    occurred_at        TIMESTAMPTZ NOT NULL
);

-- CloudEvents ids already applied: a redelivered or replayed event changes nothing.
CREATE TABLE applied_events (
    ce_id       UUID PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
