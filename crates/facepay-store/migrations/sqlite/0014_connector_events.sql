-- Events an acquirer sent by webhook (Hyperswitch), by the acquirer's own
-- event id: a delivery is retried until it is acknowledged, so the same
-- event arrives more than once, and one already handled is acknowledged
-- without acting again. Kept past the acquirer's retry window, then purged.
CREATE TABLE connector_events (
    connector TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (connector, event_id)
);
CREATE INDEX connector_events_received ON connector_events (received_at_ms);
