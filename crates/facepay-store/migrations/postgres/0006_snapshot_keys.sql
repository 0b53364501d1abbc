-- The data keys of gallery snapshot files (their rows are in data_keys like
-- any other). Every face deletion destroys all of them, so this small table
-- says which they are without a scan of data_keys.
CREATE TABLE snapshot_keys (
    key_id TEXT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL
);
