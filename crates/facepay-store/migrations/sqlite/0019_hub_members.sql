-- The hub's members as its operator onboarded them: each network's
-- currency, the account the settlement bank pays or debits, its net debit
-- cap per window (what it may owe the hub across unsettled windows and
-- transfers under way) and how many requests a minute it may make.
CREATE TABLE hub_members (
    network_id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    settlement_account TEXT NOT NULL,
    net_debit_cap_minor BIGINT NOT NULL CHECK (net_debit_cap_minor >= 0),
    requests_per_minute BIGINT NOT NULL CHECK (requests_per_minute > 0),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Money a member put in (or took out of) its funds at the settlement
-- bank: each movement once per idempotency key, posted to the ledger under
-- its id.
CREATE TABLE hub_member_funds (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES hub_members (network_id),
    idempotency_key TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (network_id, idempotency_key)
);

-- Closing a window instructs the settlement bank once per non-zero net
-- position; the window is settled when every instruction is confirmed.
CREATE TABLE hub_settlement_instructions (
    id TEXT PRIMARY KEY,
    window_id TEXT NOT NULL REFERENCES hub_windows (id),
    -- The position's ledger account: `hub:position:<who>:<cur>` or `hub:fees:<cur>`.
    participant TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- What the participant pays (positive) or is paid (negative).
    net_minor BIGINT NOT NULL CHECK (net_minor <> 0),
    settlement_account TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    bank_reference TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (window_id, participant, currency)
);
CREATE INDEX hub_settlement_instructions_state ON hub_settlement_instructions (state, window_id);

-- Screening holds a transfer for an operator's decision (`held`). SQLite
-- cannot change a CHECK in place, so the table is rebuilt; no table refers
-- to it.
CREATE TABLE hub_transfers_new (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('qr', 'atm')),
    requester TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    quote_id TEXT NOT NULL UNIQUE REFERENCES hub_quotes (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'held', 'reserved', 'dispensed', 'committed', 'reversed', 'payer_commit_pending')),
    reason TEXT,
    window_id TEXT REFERENCES hub_windows (id),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (requester, idempotency_key)
);
INSERT INTO hub_transfers_new (id, kind, requester, idempotency_key, quote_id, state, reason,
    window_id, created_at_ms, updated_at_ms)
SELECT id, kind, requester, idempotency_key, quote_id, state, reason, window_id, created_at_ms,
    updated_at_ms FROM hub_transfers;
DROP TABLE hub_transfers;
ALTER TABLE hub_transfers_new RENAME TO hub_transfers;
CREATE INDEX hub_transfers_state ON hub_transfers (state, updated_at_ms);
CREATE INDEX hub_transfers_window ON hub_transfers (window_id);
