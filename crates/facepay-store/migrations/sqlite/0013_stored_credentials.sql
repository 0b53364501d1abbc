-- A card's stored credential: the acquirer's reference to the one
-- verification of the card with its security code, made when its holder
-- added it, which every later payment on the card names instead of the
-- code (no security code is ever stored). The connector that made it, and
-- its id (for Hyperswitch, the card network's transaction id). NULL for a
-- card added before verification: it pays again once added anew.
ALTER TABLE payment_methods ADD COLUMN credential_connector TEXT;
ALTER TABLE payment_methods ADD COLUMN credential_id TEXT;
