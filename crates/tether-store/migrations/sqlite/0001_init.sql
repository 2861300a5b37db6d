-- Tether's records (SPEC §7). Secrets are sealed (see src/crypto.rs): each sealed column has its
-- key id beside it. Times are milliseconds since the Unix epoch.

CREATE TABLE tokens (
    user_id        TEXT    NOT NULL,
    server         TEXT    NOT NULL,
    access_key_id  TEXT    NOT NULL,
    access_token   BLOB    NOT NULL,
    expires_at     INTEGER,
    scopes         TEXT    NOT NULL,  -- JSON array
    refresh_key_id TEXT,
    refresh_token  BLOB,
    obtained_at    INTEGER NOT NULL,
    issuer         TEXT    NOT NULL,
    client_id      TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    PRIMARY KEY (user_id, server)
);

CREATE TABLE registrations (
    server        TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    record        TEXT NOT NULL,      -- JSON of everything but the secret
    secret_key_id TEXT,
    client_secret BLOB,
    PRIMARY KEY (server, issuer)
);

CREATE TABLE tool_lists (
    user_id    TEXT    NOT NULL,
    server     TEXT    NOT NULL,
    tools      TEXT    NOT NULL,      -- the last good tools/list, JSON
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, server)
);
