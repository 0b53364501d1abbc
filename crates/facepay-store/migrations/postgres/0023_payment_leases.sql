-- A lease on a payment, taken by a request before it moves the payment's
-- money at the issuer (a capture, void, refund, step-up, a claim's
-- decision or a sweep) and given back when it has recorded the outcome.
-- Two servers changing one payment otherwise both reach the issuer from
-- the same state, and only one of them can record what it did. A lease
-- whose holder died ends at `expires_at_ms`; the holder is a random token,
-- so that a request whose lease ran out cannot end the next one's.
CREATE TABLE payment_leases (
    payment_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
