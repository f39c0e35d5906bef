-- Real providers (VietQR, VNPay, MoMo, ZaloPay), refunds and the double-entry ledger.

ALTER TABLE payment_intents DROP CONSTRAINT payment_intents_provider_check;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_provider_check
    CHECK (provider IN ('sandbox', 'vietqr', 'vnpay', 'momo', 'zalopay'));
-- The VietQR payload shown to the shopper (NULL for the other providers).
ALTER TABLE payment_intents ADD COLUMN vietqr_payload TEXT;
-- The provider's payment page once its create API answered (MoMo, ZaloPay), so a
-- second click does not create a second provider order.
ALTER TABLE payment_intents ADD COLUMN checkout_url TEXT;
-- Sum of succeeded refunds. Never more than what was captured: the last line of defence
-- under the row lock that `Refund` takes.
ALTER TABLE payment_intents ADD COLUMN refunded_vnd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payment_intents ADD CONSTRAINT payment_intents_refunded_check
    CHECK (refunded_vnd >= 0 AND refunded_vnd <= captured_vnd);

-- A callback that reported money taken that could not be applied (wrong amount, no such
-- payment, a closed payment, a second transaction for a settled one): an operator must
-- reconcile it (e.g. a VietQR under- or over-payment).
ALTER TABLE provider_callbacks ADD COLUMN flagged BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX provider_callbacks_flagged ON provider_callbacks (received_at) WHERE flagged;

-- Refunds asked by an operator. A pending refund counts against what may still be
-- refunded, so concurrent requests can never give back more than was captured.
CREATE TABLE refunds (
    id                 UUID PRIMARY KEY,
    payment_id         UUID NOT NULL REFERENCES payment_intents (id),
    order_id           UUID NOT NULL,
    amount_vnd         BIGINT NOT NULL CHECK (amount_vnd > 0),
    reason             TEXT NOT NULL,
    idempotency_key    TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_refund_id TEXT,
    failure_code       TEXT,
    failure_message    TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';

-- The double-entry ledger. Every transaction (txn_id) is balanced: its entries sum to
-- zero. Debits are positive. Accounts:
--   provider_clearing  money the provider holds for us (an asset)
--   order_funds        what we hold for an order (a liability; its balance, negated,
--                      is captured - refunded)
-- A capture debits provider_clearing and credits order_funds; a refund the reverse.
CREATE TABLE ledger_entries (
    id         BIGSERIAL PRIMARY KEY,
    txn_id     UUID NOT NULL,
    order_id   UUID NOT NULL,
    payment_id UUID NOT NULL REFERENCES payment_intents (id),
    account    TEXT NOT NULL CHECK (account IN ('provider_clearing', 'order_funds')),
    amount_vnd BIGINT NOT NULL CHECK (amount_vnd <> 0),
    kind       TEXT NOT NULL CHECK (kind IN ('capture', 'refund')),
    -- The provider transaction or our refund id.
    reference  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX ledger_entries_order ON ledger_entries (order_id, id);
CREATE INDEX ledger_entries_txn ON ledger_entries (txn_id);

-- The sandbox gateway plays every provider now: which one, and the refunds it made.
ALTER TABLE sandbox_settlements ADD COLUMN provider TEXT NOT NULL DEFAULT 'sandbox';

CREATE TABLE sandbox_refunds (
    request_id         TEXT PRIMARY KEY,             -- the merchant's idempotency key
    payment_id         UUID NOT NULL REFERENCES payment_intents (id),
    amount_vnd         BIGINT NOT NULL CHECK (amount_vnd > 0),
    outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    provider_refund_id TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
