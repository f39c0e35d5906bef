-- The W3C trace context of the code that created the intent (the order's trace), so a
-- provider callback that arrives later continues the same trace.
ALTER TABLE payment_intents ADD COLUMN trace_headers JSONB NOT NULL DEFAULT '[]'::jsonb;
