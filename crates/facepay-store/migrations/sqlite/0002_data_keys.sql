-- Envelope encryption: one data key per sealed record, wrapped by a
-- key-encryption key named by kek_id. A record's key_id names its data key;
-- deleting the data key makes the record's ciphertext unreadable for good.
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX data_keys_kek ON data_keys (kek_id);
