-- When the payment service last asked the provider about a pending payment whose
-- callback has not come (ZaloPay's query, VNPay's querydr).
ALTER TABLE payment_intents ADD COLUMN last_queried_at TIMESTAMPTZ;
CREATE INDEX payment_intents_pending_query ON payment_intents (provider, created_at) WHERE status = 'pending';
