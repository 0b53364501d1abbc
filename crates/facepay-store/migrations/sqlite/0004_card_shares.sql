-- The card vault holds one share of each card number; the core keeps the
-- vault's token, a keyed fingerprint (the same card recognised without its
-- number) and the other share, sealed in key_id/nonce/ciphertext. Rows from
-- before the vault have no token and hold the whole number sealed; the
-- service moves those into the vault at start-up.
ALTER TABLE payment_methods ADD COLUMN vault_token TEXT;
ALTER TABLE payment_methods ADD COLUMN fingerprint TEXT;
CREATE INDEX payment_methods_fingerprint ON payment_methods (fingerprint);

-- The keyed transform a template is stored under; NULL for templates from
-- before transforms, stored as the model gave them.
ALTER TABLE templates ADD COLUMN transform_id TEXT;
