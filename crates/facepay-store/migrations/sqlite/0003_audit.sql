-- Append-only, hash-chained audit log. Each entry's hash covers the previous
-- entry's hash, so an edited, removed or reordered entry breaks the chain.
-- audit_head holds the last sequence number and hash; updating it locks the
-- row, which makes concurrent appenders take turns.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'genesis');
