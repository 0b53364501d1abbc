-- Merchants' webhooks. An event is written to the outbox
-- (webhook_events, with one webhook_deliveries row per endpoint that
-- subscribes to it) in the transaction of the change it reports, so it
-- exists exactly when the change does. The delivery worker takes due
-- deliveries under a lease, so no two servers send the same attempt, and
-- logs every attempt in webhook_attempts. Delivered, given-up and logged
-- rows are purged after a retention period.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    -- Why it was disabled: by the merchant, or after a day of failures.
    disabled_reason TEXT,
    -- The signing secret, sealed under a data key of its own
    -- (data_keys), never in clear.
    secret_key_id TEXT NOT NULL,
    secret_nonce BYTEA NOT NULL,
    secret_ciphertext BYTEA NOT NULL,
    -- When the current run of failed deliveries began; NULL after a
    -- success.
    failing_since_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at_ms);

CREATE TABLE webhook_subscriptions (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_type TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);
CREATE INDEX webhook_subscriptions_type ON webhook_subscriptions (event_type, endpoint_id);

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The payment or claim the event is about.
    resource_id TEXT NOT NULL,
    -- The body every delivery sends, as it was when the event happened.
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at_ms);
CREATE INDEX webhook_events_resource ON webhook_events (resource_id);

CREATE TABLE webhook_deliveries (
    event_id TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    -- Retries stop a window after this: the event's time, or the time of
    -- a redelivery asked by hand.
    retry_from_ms BIGINT NOT NULL,
    -- A worker holds the delivery until then; another takes it only
    -- after (the first one's server died mid-attempt).
    lease_until_ms BIGINT NOT NULL,
    lease_owner TEXT,
    delivered_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at_ms);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at_ms);
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_owner);

CREATE TABLE webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    -- The receiver's HTTP status, when it answered.
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (endpoint_id, event_id, id);
CREATE INDEX webhook_attempts_at ON webhook_attempts (at_ms);
