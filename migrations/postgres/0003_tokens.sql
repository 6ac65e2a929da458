-- API tokens. Only a SHA-256 of each token's value is kept; the value is shown once.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    workspace  TEXT,
    scopes     TEXT NOT NULL,
    hash       BYTEA NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
