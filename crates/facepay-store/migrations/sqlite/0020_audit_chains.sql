-- The audit log in 16 chains instead of one. With one chain every
-- transaction that appends takes turns on its single head row from the
-- append to its commit, so on PostgreSQL payments recorded at once queue
-- there. An entry goes to the chain its subject picks (a hash of it, so
-- one payer's or one merchant's entries stay in one chain); each chain
-- links its entries from its own genesis and keeps its own head, and
-- `audit verify` walks every chain. Entries keep one numbering across
-- chains (`seq`), increasing within each chain. The existing entries are
-- chain 1, their head its head.
ALTER TABLE audit_log ADD COLUMN chain BIGINT NOT NULL DEFAULT 1;
CREATE INDEX audit_log_by_chain ON audit_log (chain, seq);

CREATE TABLE audit_chains (
    chain BIGINT PRIMARY KEY,
    entries BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_chains (chain, entries, hash) SELECT 1, seq, hash FROM audit_head;
INSERT INTO audit_chains (chain, entries, hash) VALUES
    (2, 0, 'genesis'), (3, 0, 'genesis'), (4, 0, 'genesis'), (5, 0, 'genesis'),
    (6, 0, 'genesis'), (7, 0, 'genesis'), (8, 0, 'genesis'), (9, 0, 'genesis'),
    (10, 0, 'genesis'), (11, 0, 'genesis'), (12, 0, 'genesis'), (13, 0, 'genesis'),
    (14, 0, 'genesis'), (15, 0, 'genesis'), (16, 0, 'genesis');
DROP TABLE audit_head;
