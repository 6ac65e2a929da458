-- Webhooks and their delivery log. The event log is the outbox: each webhook keeps `cursor`, the
-- position up to which its workspace's events are delivered (or skipped as not matching its
-- types), and the delivery worker reads the workspace's events after it. Written through the
-- store's side writer, never by the appender.

CREATE TABLE webhooks (
    id         TEXT    PRIMARY KEY,
    workspace  TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    -- Kept in clear because HMAC needs it; no endpoint answers it and nothing logs it.
    secret     TEXT    NOT NULL,
    -- A JSON array of event types and `prefix.*` patterns.
    types      TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    cursor     BIGINT NOT NULL,
    -- Set when one event kept failing for the configured number of attempts; cleared by resume.
    paused_at  TEXT,
    deleted_at TEXT
);

CREATE INDEX webhooks_by_workspace ON webhooks (workspace, created_at);

-- Every delivery attempt. Attempts at one event are numbered from 1 and keep counting across
-- restarts, so (webhook, position, attempt) is unique; in-order delivery makes that key's order
-- the order of the attempts.
CREATE TABLE webhook_deliveries (
    webhook_id      TEXT    NOT NULL,
    position        BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,
    at              TEXT    NOT NULL,
    -- The receiver's HTTP status, or NULL when no answer came (then `error` says why).
    status_code     BIGINT,
    error           TEXT,
    duration_ms     BIGINT NOT NULL,
    -- When the next attempt is due; NULL after a success or when the webhook was paused.
    next_attempt_at TEXT,
    PRIMARY KEY (webhook_id, position, attempt)
);
