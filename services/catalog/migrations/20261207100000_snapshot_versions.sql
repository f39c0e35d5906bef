-- Every product snapshot carries a version drawn from this sequence when it is read, so
-- a consumer can keep the newest snapshot of a product whatever order it receives them
-- in. Snapshots of one product are read one round at a time (a round holds the
-- product's mark until it commits, and a change waits for that to mark it again), so a
-- later snapshot of a product always has a greater version.
CREATE SEQUENCE product_snapshot_versions AS BIGINT;
