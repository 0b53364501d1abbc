-- PostgreSQL drops here the foreign keys to rows that nearly every payment
-- references (the merchant, its store and terminal, the ledger's shared
-- accounts, the loyalty programme and its coupons): each one locked its row
-- in every payment. SQLite keeps them: it has one writer, and its checks
-- take no lock. `facepay ledger verify` checks those references on both.
SELECT 1;
