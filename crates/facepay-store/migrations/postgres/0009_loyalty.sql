-- Loyalty: merchants' points programs, stamp cards and coupons, and the
-- points ledger. Points are a merchant's liability in a unit of their own
-- (one per merchant): their transfers and entries are kept apart from the
-- money ledger's and never share an account with it.

CREATE TABLE coupons (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('fixed', 'percent')),
    -- minor units for 'fixed', basis points for 'percent'
    value BIGINT NOT NULL CHECK (value > 0),
    min_spend_minor BIGINT NOT NULL DEFAULT 0 CHECK (min_spend_minor >= 0),
    valid_from_ms BIGINT NOT NULL,
    valid_until_ms BIGINT NOT NULL,
    per_user_max BIGINT NOT NULL CHECK (per_user_max > 0),
    total_max BIGINT CHECK (total_max IS NULL OR total_max > 0),
    used_count BIGINT NOT NULL DEFAULT 0,
    -- 1: may be used with other coupons on one payment
    stackable BIGINT NOT NULL CHECK (stackable IN (0, 1)),
    -- 1: only for users it was granted to (stamp card rewards)
    granted_only BIGINT NOT NULL CHECK (granted_only IN (0, 1)),
    status TEXT NOT NULL CHECK (status IN ('active', 'paused')),
    created_at_ms BIGINT NOT NULL,
    CHECK (valid_from_ms < valid_until_ms),
    CHECK (used_count >= 0 AND (total_max IS NULL OR used_count <= total_max)),
    CHECK (kind = 'fixed' OR value <= 10000)
);
CREATE INDEX coupons_merchant ON coupons (merchant_id, status, valid_until_ms);

CREATE TABLE loyalty_programs (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    kind TEXT NOT NULL CHECK (kind IN ('points', 'stamps')),
    status TEXT NOT NULL CHECK (status IN ('active', 'paused')),
    -- points: basis points of the amount paid, at most points_cap a payment
    points_bps BIGINT CHECK (points_bps IS NULL OR (points_bps > 0 AND points_bps <= 10000)),
    points_cap BIGINT CHECK (points_cap IS NULL OR points_cap > 0),
    -- stamps: every stamps_per_reward-th visit grants reward_coupon_id
    stamps_per_reward BIGINT CHECK (stamps_per_reward IS NULL OR stamps_per_reward > 1),
    reward_coupon_id TEXT REFERENCES coupons (id),
    created_at_ms BIGINT NOT NULL,
    CHECK ((kind = 'points' AND points_bps IS NOT NULL)
        OR (kind = 'stamps' AND stamps_per_reward IS NOT NULL AND reward_coupon_id IS NOT NULL))
);
CREATE INDEX loyalty_programs_merchant ON loyalty_programs (merchant_id, status);

-- A user's holding of a coupon: how many uses they were granted (for
-- granted-only coupons, the user's only limit) and how many they have
-- used; one row per user and coupon, so taking a use is one conditional
-- update.
CREATE TABLE coupon_holdings (
    coupon_id TEXT NOT NULL REFERENCES coupons (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    granted BIGINT NOT NULL DEFAULT 0 CHECK (granted >= 0),
    used BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (coupon_id, user_id)
);
CREATE INDEX coupon_holdings_user ON coupon_holdings (user_id);

CREATE TABLE coupon_uses (
    payment_id TEXT NOT NULL REFERENCES payments (id),
    coupon_id TEXT NOT NULL REFERENCES coupons (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    discount_minor BIGINT NOT NULL CHECK (discount_minor > 0),
    restored BIGINT NOT NULL DEFAULT 0 CHECK (restored IN (0, 1)),
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (payment_id, coupon_id)
);

CREATE TABLE stamp_cards (
    program_id TEXT NOT NULL REFERENCES loyalty_programs (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    stamps BIGINT NOT NULL CHECK (stamps >= 0),
    PRIMARY KEY (program_id, user_id)
);

-- The stamp each captured payment gave, so that a full refund takes it
-- back (and the reward it completed, if still unused).
CREATE TABLE payment_stamps (
    payment_id TEXT NOT NULL REFERENCES payments (id),
    program_id TEXT NOT NULL REFERENCES loyalty_programs (id),
    rewarded BIGINT NOT NULL CHECK (rewarded IN (0, 1)),
    taken_back BIGINT NOT NULL DEFAULT 0 CHECK (taken_back IN (0, 1)),
    PRIMARY KEY (payment_id, program_id)
);

-- The points ledger. A transfer moves points between a merchant's
-- liability account and one user's account at that merchant; its entries
-- sum to zero. points_balances holds each user's balance for conditional
-- updates (never below zero); verify checks it against the entries.
CREATE TABLE points_transfers (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    payment_id TEXT REFERENCES payments (id),
    kind TEXT NOT NULL CHECK (kind IN ('earn', 'redeem', 'clawback', 'restore')),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX points_transfers_payment ON points_transfers (payment_id);
CREATE INDEX points_transfers_merchant ON points_transfers (merchant_id, created_at_ms);

CREATE TABLE points_entries (
    id BIGSERIAL PRIMARY KEY,
    transfer_id TEXT NOT NULL REFERENCES points_transfers (id),
    account_id TEXT NOT NULL,
    points BIGINT NOT NULL CHECK (points <> 0)
);
CREATE INDEX points_entries_transfer ON points_entries (transfer_id);
CREATE INDEX points_entries_account ON points_entries (account_id);

CREATE TABLE points_balances (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    points BIGINT NOT NULL CHECK (points >= 0),
    PRIMARY KEY (merchant_id, user_id)
);
