-- Notification: the contacts of orders, the notifications made from order events, and
-- every delivery attempt.

-- The shopper of each order, from OrderPlaced: later events carry only the order id.
-- Personal data: read only to address and render messages.
CREATE TABLE order_contacts (
    order_id      UUID PRIMARY KEY,
    order_code    TEXT        NOT NULL,
    customer_name TEXT        NOT NULL,
    phone         TEXT        NOT NULL,   -- national form, e.g. 0912345123
    email         TEXT,                   -- lower case; NULL when the shopper gave none
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One message to one recipient over one channel. At most one per (event, channel):
-- a redelivered event cannot notify twice.
CREATE TABLE notifications (
    id              UUID PRIMARY KEY,                 -- UUIDv7: newest first by id
    order_id        UUID        NOT NULL,
    recipient       TEXT        NOT NULL,             -- masked, for display and events
    address         TEXT        NOT NULL,             -- the real phone or e-mail: sending and search only
    channel         TEXT        NOT NULL CHECK (channel IN ('log', 'email', 'sms', 'zalo_zns')),
    template        TEXT        NOT NULL,
    subject         TEXT        NOT NULL,
    body            TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    provider_ref    TEXT,                             -- the provider's message id, when it gave one
    source_event_id UUID        NOT NULL,             -- ce_id of the event that caused it
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (source_event_id, channel),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_by_order ON notifications (order_id, id DESC);
CREATE INDEX notifications_by_address ON notifications (address, id DESC);

-- Every delivery attempt, for support cases ("did the SMS go out, and when?").
CREATE TABLE notification_attempts (
    notification_id UUID        NOT NULL REFERENCES notifications (id),
    attempt         INTEGER     NOT NULL CHECK (attempt > 0),
    outcome         TEXT        NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    error           TEXT,
    duration_ms     BIGINT      NOT NULL,
    attempted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, attempt)
);
