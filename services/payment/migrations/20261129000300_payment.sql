-- Payment: intents (one per order), their transitions, every provider callback, and the
-- sandbox gateway's settlements.

CREATE TABLE payment_intents (
    id                      UUID PRIMARY KEY,           -- v7: time-ordered
    order_id                UUID NOT NULL UNIQUE,       -- one payment per order
    order_code              TEXT NOT NULL,
    -- What the shopper chose; the provider that takes the money may differ (every
    -- method goes through the sandbox until the real adapters exist).
    method                  TEXT NOT NULL CHECK (method IN ('vietqr', 'vnpay', 'momo', 'zalopay', 'sandbox')),
    provider                TEXT NOT NULL CHECK (provider IN ('sandbox')),
    status                  TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'expired', 'cancelled')),
    amount_vnd              BIGINT NOT NULL CHECK (amount_vnd > 0),
    captured_vnd            BIGINT NOT NULL DEFAULT 0 CHECK (captured_vnd >= 0 AND captured_vnd <= amount_vnd),
    -- Set by the verified callback that settled the intent.
    provider_transaction_id TEXT,
    pay_url                 TEXT NOT NULL,
    expires_at              TIMESTAMPTZ NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A provider transaction settles at most one intent.
    UNIQUE (provider, provider_transaction_id)
);

-- The expiry sweeper and the sandbox scheduler look only at pending intents.
CREATE INDEX payment_intents_pending_expiry ON payment_intents (expires_at) WHERE status = 'pending';
CREATE INDEX payment_intents_pending_created ON payment_intents (created_at) WHERE status = 'pending';

-- Every move of an intent, for the audit trail.
CREATE TABLE payment_transitions (
    id          BIGSERIAL PRIMARY KEY,
    payment_id  UUID NOT NULL REFERENCES payment_intents (id),
    from_status TEXT,                                   -- NULL when the intent was created
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX payment_transitions_payment ON payment_transitions (payment_id, id);

-- Every callback received, accepted or not, with the verdict: forged, stale and wrong
-- callbacks are evidence too.
CREATE TABLE provider_callbacks (
    id                      UUID PRIMARY KEY,
    provider                TEXT NOT NULL,
    -- The intent it was applied to; NULL when the callback was not trusted (bad
    -- signature, malformed) or names no known payment.
    payment_id              UUID REFERENCES payment_intents (id),
    provider_transaction_id TEXT,
    raw_body                TEXT NOT NULL,
    signature_valid         BOOLEAN NOT NULL,
    verdict                 TEXT NOT NULL CHECK (verdict IN (
                                'accepted', 'already_processed', 'missing_signature',
                                'invalid_signature', 'malformed', 'stale', 'unknown_payment',
                                'wrong_amount', 'late', 'closed')),
    reason                  TEXT NOT NULL,               -- the human-readable why
    http_status             SMALLINT NOT NULL,           -- what the provider was answered
    received_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX provider_callbacks_payment ON provider_callbacks (payment_id, received_at);

-- The sandbox gateway plays the provider: this is its own record of which payments it
-- has settled and whether the payment service has acknowledged the callback. A real
-- provider keeps this on its side. Rows are claimed with a lease, so several replicas
-- never deliver the same callback at once, and a crash between claim and delivery only
-- delays it.
CREATE TABLE sandbox_settlements (
    payment_id              UUID PRIMARY KEY REFERENCES payment_intents (id),
    outcome                 TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    provider_transaction_id TEXT NOT NULL UNIQUE,
    state                   TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'abandoned')),
    attempts                INTEGER NOT NULL DEFAULT 0,
    next_attempt_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_response           TEXT,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX sandbox_settlements_due ON sandbox_settlements (next_attempt_at) WHERE state = 'pending';
