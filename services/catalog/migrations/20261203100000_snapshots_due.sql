-- Products whose snapshot on the compacted product topic is out of date. A change to a
-- product or its stock marks it here in its own transaction; the snapshot publisher
-- takes the marks a round at a time and enqueues one snapshot per product, read after
-- the mark was taken, so a burst of reservations on a hot product costs one snapshot,
-- not one per reservation, and the last snapshot on the topic is never older than the
-- last change.
CREATE TABLE product_snapshots_due (
    product_id UUID PRIMARY KEY REFERENCES products (id),
    marked_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
