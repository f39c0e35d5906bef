-- The SHA-256 hashes of the access tokens PlaceOrder answered for an order (a retry with
-- the same idempotency key answers another one). The tokens themselves are never stored.
-- Orders placed before this migration have none: only operators can read them.
ALTER TABLE orders ADD COLUMN access_token_hashes BYTEA[] NOT NULL DEFAULT '{}';
