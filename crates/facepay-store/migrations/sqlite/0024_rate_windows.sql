-- Counts in fixed windows of time, shared by every server on the store: a
-- hub member's requests a minute, and wrong pairing codes a minute across
-- all terminals. Counted in memory, n servers let n times as many through.
-- One row per name, restarted in place when a later window begins, so the
-- table stays as small as the set of names.
CREATE TABLE rate_windows (
    name TEXT PRIMARY KEY,
    window_start_ms BIGINT NOT NULL,
    used BIGINT NOT NULL
);
