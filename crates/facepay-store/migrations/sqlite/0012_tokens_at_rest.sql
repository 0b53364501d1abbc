-- An enrolment's answer was kept for replays with the new user's bearer
-- token in it. Answers are now kept without it (a replay is answered with
-- a token made then); this removes the tokens from the answers kept so far.
UPDATE idempotency_keys
SET response = json_remove(response, '$.token')
WHERE scope LIKE 'app:%'
  AND state = 'completed'
  AND json_valid(response)
  AND json_type(response, '$.token') IS NOT NULL;
