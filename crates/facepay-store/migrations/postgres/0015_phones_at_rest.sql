-- Phone numbers were stored in clear: in users.phone, and inside
-- enrolments' idempotency scopes (app:+8210...). A user now has a keyed hash
-- of the number for lookups (HMAC-SHA256 under the phone lookup key, a data
-- key wrapped by a KEK; unique, so a number holds one account) and the
-- number sealed under a data key of its own, for the user's page. SQL
-- cannot compute either: at start the server converts the rows written in
-- the old form a batch at a time and clears users.phone, and moves the
-- idempotency keys of scopes holding a number to the hash's scope
-- (facepay_payments::KeyManagement::seal_phones). users.phone stays, always
-- empty after that, as it does on SQLite.
ALTER TABLE users
    ADD COLUMN phone_hash TEXT,
    ADD COLUMN phone_key_id TEXT,
    ADD COLUMN phone_nonce BYTEA,
    ADD COLUMN phone_ciphertext BYTEA;
CREATE UNIQUE INDEX users_phone_hash ON users (phone_hash);

-- Clean-ups a start owes the store, recorded in the transaction that makes
-- them due, so that a crash before they ran does not forget them (the
-- rebuild of a SQLite file after phone numbers left it: see
-- facepay_store::maintenance).
CREATE TABLE maintenance_due (
    task TEXT PRIMARY KEY,
    due_since_ms BIGINT NOT NULL
);
