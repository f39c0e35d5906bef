-- The version of the snapshot each mirrored product is as of: a snapshot replaces the
-- mirrored row only if its version is greater (0: mirrored before snapshots had one).
ALTER TABLE mirrored_products ADD COLUMN snapshot_version BIGINT NOT NULL DEFAULT 0;
