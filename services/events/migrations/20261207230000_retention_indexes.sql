-- The retention pruner (ocop_events::retention) finds old rows by these, a batch at a
-- time, instead of scanning the tables.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX inbox_processed_at ON inbox (processed_at);
