-- Catalog: producers, products, stock and reservations.

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- unaccent() is STABLE (its dictionary could change); pinning the dictionary makes a
-- wrapper that may be used in indexes and generated columns.
CREATE FUNCTION ocop_fold(input TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(unaccent('unaccent'::regdictionary, input));

CREATE TABLE producers (
    id         UUID PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('cooperative', 'household', 'enterprise')),
    district   TEXT NOT NULL,
    province   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id          UUID PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    producer_id UUID NOT NULL REFERENCES producers (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    category    TEXT NOT NULL,
    stars       SMALLINT NOT NULL CHECK (stars BETWEEN 3 AND 5),
    unit        TEXT NOT NULL,
    price_vnd   BIGINT NOT NULL CHECK (price_vnd > 0),
    status      TEXT NOT NULL CHECK (status IN ('active', 'hidden')),
    -- Folded (lower case, no diacritics) text that search matches against: name,
    -- category, producer and district. Written by the store on every upsert.
    search_text TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX products_search_trgm ON products USING gin (search_text gin_trgm_ops);
CREATE INDEX products_producer ON products (producer_id);

CREATE TABLE stock (
    product_id UUID PRIMARY KEY REFERENCES products (id),
    on_hand    BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved   BIGINT NOT NULL CHECK (reserved >= 0),
    CHECK (reserved <= on_hand)
);

CREATE TABLE stock_adjustments (
    id         UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id),
    delta      BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    id         UUID PRIMARY KEY,
    order_id   UUID NOT NULL UNIQUE,
    state      TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE state = 'held';

CREATE TABLE reservation_lines (
    reservation_id UUID   NOT NULL REFERENCES reservations (id),
    product_id     UUID   NOT NULL REFERENCES products (id),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);
