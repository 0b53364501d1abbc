-- What a user chose in the app for their next payments at a merchant: a
-- coupon to use first, and whether to pay with their points there.

CREATE TABLE loyalty_choices (
    user_id TEXT NOT NULL REFERENCES users (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    coupon_id TEXT REFERENCES coupons (id),
    redeem_points BIGINT NOT NULL CHECK (redeem_points IN (0, 1)),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, merchant_id)
);

-- The sweep of payments left behind by an interrupted request.
CREATE INDEX payments_state_updated ON payments (state, updated_at_ms);
