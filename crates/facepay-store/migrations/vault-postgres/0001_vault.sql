-- The card vault's own database, never the core's. One share of each card
-- number, sealed under a data key that the vault's master key wraps, and
-- nothing else derived from the number: no hash or fingerprint that someone
-- holding this database and the vault's keys could test guesses against.

-- One row: a check value of the master key, so that wrong key parts are
-- refused at unlock instead of failing on every card.
CREATE TABLE vault_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_check TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE vault_shares (
    token TEXT PRIMARY KEY,
    key_nonce BYTEA NOT NULL,
    wrapped_key BYTEA NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL
);
