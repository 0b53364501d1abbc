-- The cross-border hub: quotes the payer accepts once, transfers across two
-- networks, one-time cash codes, and settlement windows with each
-- participant's net position.

CREATE TABLE hub_quotes (
    id TEXT PRIMARY KEY,
    -- What the quote may pay: a QR payment or a cash withdrawal.
    kind TEXT NOT NULL CHECK (kind IN ('qr', 'atm')),
    provider TEXT NOT NULL,
    payer_network TEXT NOT NULL,
    payer_account TEXT NOT NULL,
    payee_network TEXT NOT NULL,
    payee_account TEXT NOT NULL,
    payee_name TEXT NOT NULL,
    source_currency TEXT NOT NULL,
    source_minor BIGINT NOT NULL CHECK (source_minor > 0),
    fee_minor BIGINT NOT NULL CHECK (fee_minor >= 0 AND fee_minor < source_minor),
    destination_currency TEXT NOT NULL,
    destination_minor BIGINT NOT NULL CHECK (destination_minor > 0),
    -- Rates are 128-bit integers scaled by 10^9: kept as decimal text.
    mid_rate TEXT NOT NULL,
    customer_rate TEXT NOT NULL,
    reference TEXT,
    expires_at_ms BIGINT NOT NULL,
    used_by TEXT,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE hub_windows (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'settled')),
    transfer_count BIGINT NOT NULL DEFAULT 0,
    opened_at_ms BIGINT NOT NULL,
    closed_at_ms BIGINT,
    settled_at_ms BIGINT
);
CREATE UNIQUE INDEX hub_windows_one_open ON hub_windows (state) WHERE state = 'open';

CREATE TABLE hub_transfers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('qr', 'atm')),
    requester TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    quote_id TEXT NOT NULL UNIQUE REFERENCES hub_quotes (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'reserved', 'dispensed', 'committed', 'reversed', 'payer_commit_pending')),
    reason TEXT,
    window_id TEXT REFERENCES hub_windows (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (requester, idempotency_key)
);
CREATE INDEX hub_transfers_state ON hub_transfers (state, updated_at_ms);
CREATE INDEX hub_transfers_window ON hub_transfers (window_id);

CREATE TABLE hub_atm_codes (
    code_hash TEXT PRIMARY KEY,
    quote_id TEXT NOT NULL UNIQUE REFERENCES hub_quotes (id),
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE hub_positions (
    window_id TEXT NOT NULL REFERENCES hub_windows (id),
    participant TEXT NOT NULL,
    currency TEXT NOT NULL,
    net_minor BIGINT NOT NULL,
    PRIMARY KEY (window_id, participant, currency)
);

-- Each member network's keys for the hub's API, kept hashed.
CREATE TABLE hub_member_keys (
    key_hash TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- The legs facepay itself holds as a member network: a user's card
-- authorised for a payment abroad, or a merchant's credit from abroad.
CREATE TABLE hub_member_legs (
    transfer_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'reversed')),
    issuer_ref TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
