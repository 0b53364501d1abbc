-- The risk engine counts a payer's, a card's and a terminal's recent
-- payments on every payment: each count is an index range scan.
CREATE INDEX payments_user_created ON payments (user_id, created_at_ms);
CREATE INDEX payments_terminal_created ON payments (terminal_id, created_at_ms);
CREATE INDEX payments_method_created ON payments (payment_method_id, created_at_ms);
