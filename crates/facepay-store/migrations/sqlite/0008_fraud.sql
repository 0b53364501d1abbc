-- What the risk engine decides and what follows from it: the assessment of
-- each identified payment, refused attempts at terminals, failed step-up
-- factors, fraud claims, the blocklist fed by accepted claims, and the
-- operators who review them.

-- One row per assessed payment, written with the payment: which rules
-- fired and why, and for a step-up what it asks for.
CREATE TABLE risk_assessments (
    payment_id TEXT PRIMARY KEY REFERENCES payments (id),
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'step_up', 'review', 'decline')),
    factor TEXT,
    score BIGINT NOT NULL,
    fired TEXT NOT NULL,
    -- A card tap's challenge: the unpredictable number and the date, hex.
    challenge TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX risk_assessments_decision ON risk_assessments (decision, at_ms);

-- Attempts that leave no payment behind: no face matched, or a spoof.
CREATE TABLE terminal_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal_id TEXT NOT NULL REFERENCES terminals (id),
    kind TEXT NOT NULL CHECK (kind IN ('no_match', 'spoof')),
    at_ms BIGINT NOT NULL
);
CREATE INDEX terminal_attempts_terminal ON terminal_attempts (terminal_id, at_ms);
CREATE INDEX terminal_attempts_at ON terminal_attempts (at_ms);

ALTER TABLE terminals ADD COLUMN flagged_at_ms BIGINT;
ALTER TABLE terminals ADD COLUMN flag_reason TEXT;

-- A wrong PIN or wrong phone digits, counted against every candidate the
-- step-up was asked of.
CREATE TABLE factor_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users (id),
    factor TEXT NOT NULL CHECK (factor IN ('phone', 'pin')),
    at_ms BIGINT NOT NULL
);
CREATE INDEX factor_failures_user ON factor_failures (user_id, factor, at_ms);
CREATE INDEX factor_failures_at ON factor_failures (at_ms);

CREATE TABLE claims (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    state TEXT NOT NULL CHECK (state IN ('opened', 'under_review', 'accepted', 'rejected')),
    reason TEXT NOT NULL,
    note TEXT,
    compensated_minor BIGINT NOT NULL DEFAULT 0 CHECK (compensated_minor >= 0),
    recovered_minor BIGINT NOT NULL DEFAULT 0,
    opened_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    CHECK (recovered_minor >= 0 AND recovered_minor <= compensated_minor)
);
CREATE INDEX claims_state ON claims (state, opened_at_ms);
CREATE INDEX claims_user ON claims (user_id, opened_at_ms);

-- Entries added at run time (by accepted claims or operators), on top of
-- the lists in the rules file.
CREATE TABLE risk_blocks (
    kind TEXT NOT NULL CHECK (kind IN ('user', 'card', 'terminal', 'merchant', 'country')),
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- 'claim' entries are lifted when the user enrols a face again;
    -- 'operator' entries only by an operator.
    source TEXT NOT NULL CHECK (source IN ('claim', 'operator')),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    PRIMARY KEY (kind, value)
);

CREATE TABLE operator_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);
