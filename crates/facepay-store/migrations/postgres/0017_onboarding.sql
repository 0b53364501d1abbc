-- Operators onboard merchants, stores and terminals through the API;
-- terminals pair with a one-time code; merchant keys carry a scope and
-- operators a role; every key can expire, be rotated and be revoked.

-- A merchant's profile. Closing is final: a closed merchant keeps status
-- 'suspended' (so whatever refuses a suspended merchant refuses it too)
-- and gets `closed_at_ms`, which nothing ever clears.
ALTER TABLE merchants ADD COLUMN legal_name TEXT;
ALTER TABLE merchants ADD COLUMN settlement_currency TEXT;
ALTER TABLE merchants ADD COLUMN closed_at_ms BIGINT;

ALTER TABLE stores ADD COLUMN address TEXT;
-- An IANA time zone name, checked against the tz database on the way in.
ALTER TABLE stores ADD COLUMN time_zone TEXT;
-- JSON: [{"day": "mon", "opens": "08:00", "closes": "20:00"}, ...].
ALTER TABLE stores ADD COLUMN opening_hours TEXT;

-- A terminal's name is unique in its store. A terminal waiting for its
-- pairing has an empty public key (no signature verifies) and no
-- `paired_at_ms`. Retiring is final, like closing a merchant: status
-- 'suspended' and `retired_at_ms`.
ALTER TABLE terminals ADD COLUMN name TEXT;
ALTER TABLE terminals ADD COLUMN paired_at_ms BIGINT;
ALTER TABLE terminals ADD COLUMN retired_at_ms BIGINT;
UPDATE terminals SET name = id, paired_at_ms = created_at_ms;
CREATE UNIQUE INDEX terminals_store_name ON terminals (store_id, name);

-- The one live pairing code of a terminal: an Argon2id hash (the code is
-- short, so a fast hash could be searched), its expiry, its use and the
-- wrong codes tried against it.
CREATE TABLE pairing_codes (
    terminal_id TEXT PRIMARY KEY REFERENCES terminals (id),
    code_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    failed_attempts BIGINT NOT NULL DEFAULT 0
);

-- Merchant keys: keys made before this migration are admin keys.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'
    CHECK (scope IN ('read', 'refund_capture', 'admin'));
ALTER TABLE api_keys ADD COLUMN label TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN replaced_by TEXT;
CREATE INDEX api_keys_merchant ON api_keys (merchant_id, created_at_ms);

-- Operators and their roles; an operator may hold several keys (during a
-- rotation, two). Operators who held a key before are admins.
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('support', 'risk', 'admin')),
    created_at_ms BIGINT NOT NULL
);
INSERT INTO operators (name, role, created_at_ms)
SELECT name, 'admin', created_at_ms FROM operator_keys;
-- `name` was the operator's; from now on it is the key's own label (its
-- id for new keys), and `operator_name` says whose key it is.
ALTER TABLE operator_keys ADD COLUMN operator_name TEXT REFERENCES operators (name);
UPDATE operator_keys SET operator_name = name;
ALTER TABLE operator_keys ADD COLUMN label TEXT;
ALTER TABLE operator_keys ADD COLUMN prefix TEXT;
ALTER TABLE operator_keys ADD COLUMN expires_at_ms BIGINT;
ALTER TABLE operator_keys ADD COLUMN revoked_at_ms BIGINT;
ALTER TABLE operator_keys ADD COLUMN replaced_by TEXT;
CREATE INDEX operator_keys_operator ON operator_keys (operator_name, created_at_ms);
