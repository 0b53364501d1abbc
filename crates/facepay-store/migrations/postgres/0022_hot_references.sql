-- A foreign key makes every insert lock the row it references (FOR KEY
-- SHARE): one more query, a WAL record and, when other transactions hold
-- the same row, a new multixact listing them all. The rows below are
-- referenced by nearly every payment at once (the merchant, its store and
-- terminal, the ledger's shared accounts, the loyalty programme and its
-- coupons), so every payment in flight contended on them. None of them is
-- ever deleted, and the code writes only ids it has just read or, for
-- ledger accounts, inserted in the same transaction; `facepay ledger
-- verify` finds any reference without its row. References to a payer's or
-- a payment's own rows stay: one transaction at a time takes those. So does
-- a webhook delivery's to its endpoint, which is shared but can be deleted.
ALTER TABLE payments DROP CONSTRAINT payments_merchant_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_store_id_fkey;
ALTER TABLE payments DROP CONSTRAINT payments_terminal_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_id_fkey;
ALTER TABLE points_transfers DROP CONSTRAINT points_transfers_merchant_id_fkey;
ALTER TABLE points_balances DROP CONSTRAINT points_balances_merchant_id_fkey;
ALTER TABLE stamp_cards DROP CONSTRAINT stamp_cards_program_id_fkey;
ALTER TABLE payment_stamps DROP CONSTRAINT payment_stamps_program_id_fkey;
ALTER TABLE coupon_uses DROP CONSTRAINT coupon_uses_coupon_id_fkey;
ALTER TABLE coupon_holdings DROP CONSTRAINT coupon_holdings_coupon_id_fkey;
ALTER TABLE terminal_attempts DROP CONSTRAINT terminal_attempts_terminal_id_fkey;
