-- Parties, payments, idempotency and the double-entry ledger (PostgreSQL).
-- Times are milliseconds since the Unix epoch; money is integer minor units.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    phone TEXT UNIQUE,
    phone_last4 TEXT,
    pin_hash TEXT,
    token_hash TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at_ms BIGINT NOT NULL,
    deleted_at_ms BIGINT
);
CREATE INDEX users_phone_last4 ON users (phone_last4);

CREATE TABLE templates (
    user_id TEXT PRIMARY KEY REFERENCES users (id),
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE payment_methods (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    expiry_month BIGINT NOT NULL,
    expiry_year BIGINT NOT NULL,
    key_id TEXT,
    nonce BYTEA,
    ciphertext BYTEA,
    status TEXT NOT NULL CHECK (status IN ('active', 'deleted')),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX payment_methods_user ON payment_methods (user_id);

CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    fee_bps BIGINT NOT NULL CHECK (fee_bps >= 0 AND fee_bps <= 10000),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE stores (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    city TEXT NOT NULL,
    currency TEXT NOT NULL,
    latitude_e6 BIGINT NOT NULL,
    longitude_e6 BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL REFERENCES stores (id),
    public_key BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    key_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL REFERENCES terminals (id),
    store_id TEXT NOT NULL REFERENCES stores (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    idempotency_key TEXT NOT NULL,
    user_id TEXT REFERENCES users (id),
    payment_method_id TEXT REFERENCES payment_methods (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    capture_mode TEXT NOT NULL CHECK (capture_mode IN ('automatic', 'manual')),
    authorised_minor BIGINT NOT NULL DEFAULT 0,
    captured_minor BIGINT NOT NULL DEFAULT 0,
    refunded_minor BIGINT NOT NULL DEFAULT 0,
    fee_minor BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    connector TEXT,
    issuer_ref TEXT,
    match_score DOUBLE PRECISION,
    candidates TEXT,
    step_up_attempts BIGINT NOT NULL DEFAULT 0,
    liveness TEXT,
    expires_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (terminal_id, idempotency_key),
    CHECK (captured_minor <= authorised_minor AND authorised_minor <= amount_minor),
    CHECK (refunded_minor >= 0 AND refunded_minor <= captured_minor)
);
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at_ms, id);
CREATE INDEX payments_state_expires ON payments (state, expires_at_ms);

CREATE TABLE payment_events (
    id BIGSERIAL PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id);

CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE ledger_transfers (
    id TEXT PRIMARY KEY,
    payment_id TEXT REFERENCES payments (id),
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX ledger_transfers_payment ON ledger_transfers (payment_id);

CREATE TABLE ledger_entries (
    id BIGSERIAL PRIMARY KEY,
    transfer_id TEXT NOT NULL REFERENCES ledger_transfers (id),
    account_id TEXT NOT NULL REFERENCES ledger_accounts (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor <> 0)
);
CREATE INDEX ledger_entries_transfer ON ledger_entries (transfer_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    status_code BIGINT,
    response TEXT,
    locked_until_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at_ms);

CREATE TABLE terminal_nonces (
    terminal_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at_ms BIGINT NOT NULL,
    PRIMARY KEY (terminal_id, nonce)
);
CREATE INDEX terminal_nonces_seen ON terminal_nonces (seen_at_ms);
