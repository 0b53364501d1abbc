-- Two start-up passes look for rows an earlier release left behind: cards
-- stored whole (moved to the vault) and phone numbers stored in clear
-- (sealed). Without an index each pass reads every card and every user,
-- about 2.5 s apiece at a million accounts, on every start. These partial
-- indexes hold only the rows the passes want, so they are empty once the
-- passes are done.
CREATE INDEX payment_methods_stored_whole ON payment_methods (id)
    WHERE vault_token IS NULL AND ciphertext IS NOT NULL AND status = 'active';
CREATE INDEX users_phone_in_clear ON users (id) WHERE phone IS NOT NULL;
