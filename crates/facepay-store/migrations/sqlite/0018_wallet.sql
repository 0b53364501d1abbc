-- A user holds several cards and pays with the one marked default: 1 on
-- at most one active card of a user (the index below), 0 on the others
-- and on every removed card. An integer, not a boolean, so that both
-- engines read it the same way.
ALTER TABLE payment_methods ADD COLUMN is_default BIGINT NOT NULL DEFAULT 0
    CHECK (is_default IN (0, 1));

-- Each user's card from before the wallet, the oldest active one if there
-- were ever several, stays the card they pay with.
UPDATE payment_methods SET is_default = 1
WHERE status = 'active'
  AND id = (
    SELECT p.id FROM payment_methods p
    WHERE p.user_id = payment_methods.user_id AND p.status = 'active'
    ORDER BY p.created_at_ms, p.id
    LIMIT 1
  );

CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (user_id)
    WHERE is_default = 1;
