-- Orders, their price-snapshot lines and every status change.

CREATE TABLE orders (
    id                  UUID PRIMARY KEY,
    code                TEXT NOT NULL UNIQUE,
    -- Idempotency (Stripe's semantics): one order per key; the fingerprint of the
    -- request tells a retry (same request) from a conflict (different request).
    idempotency_key     TEXT NOT NULL UNIQUE,
    request_fingerprint TEXT NOT NULL,
    customer_name       TEXT NOT NULL,
    customer_phone      TEXT NOT NULL,
    customer_email      TEXT,
    province            TEXT NOT NULL,
    district            TEXT NOT NULL,
    ward                TEXT NOT NULL,
    street              TEXT NOT NULL,
    delivery_method     TEXT NOT NULL,
    payment_method      TEXT NOT NULL,
    sales_channel       TEXT NOT NULL,
    note                TEXT NOT NULL,
    status              TEXT NOT NULL,
    cancellation_reason TEXT,
    cancellation_detail TEXT NOT NULL DEFAULT '',
    subtotal_vnd        BIGINT NOT NULL CHECK (subtotal_vnd > 0),
    shipping_fee_vnd    BIGINT NOT NULL CHECK (shipping_fee_vnd >= 0),
    total_vnd           BIGINT NOT NULL CHECK (total_vnd = subtotal_vnd + shipping_fee_vnd),
    pay_url             TEXT,
    vietqr_payload      TEXT,
    payment_expires_at  TIMESTAMPTZ,
    carrier             TEXT,
    tracking_code       TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_by_phone ON orders (customer_phone, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id       UUID    NOT NULL REFERENCES orders (id),
    line_no        INT     NOT NULL,
    product_id     UUID    NOT NULL,
    sku            TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    unit           TEXT    NOT NULL,
    quantity       INT     NOT NULL CHECK (quantity > 0),
    unit_price_vnd BIGINT  NOT NULL CHECK (unit_price_vnd > 0),
    line_total_vnd BIGINT  NOT NULL CHECK (line_total_vnd = unit_price_vnd * quantity),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_status_history (
    id          BIGSERIAL PRIMARY KEY,
    order_id    UUID        NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status   TEXT        NOT NULL,
    cause       TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX order_status_history_by_order ON order_status_history (order_id, id);
