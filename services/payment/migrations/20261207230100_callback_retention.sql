-- The retention pruner deletes stored callbacks older than CALLBACK_RETENTION by this.
CREATE INDEX provider_callbacks_received_at ON provider_callbacks (received_at);
