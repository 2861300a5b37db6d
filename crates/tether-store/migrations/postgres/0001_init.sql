-- Tether's records (SPEC §7), the same schema as migrations/sqlite in PostgreSQL's types.
-- Secrets are sealed (see src/crypto.rs); each sealed column has its key id beside it.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE tokens (
    user_id        TEXT   NOT NULL,
    server         TEXT   NOT NULL,
    access_key_id  TEXT   NOT NULL,
    access_token   BYTEA  NOT NULL,
    expires_at     BIGINT,
    scopes         TEXT   NOT NULL,
    refresh_key_id TEXT,
    refresh_token  BYTEA,
    obtained_at    BIGINT NOT NULL,
    issuer         TEXT   NOT NULL,
    client_id      TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    PRIMARY KEY (user_id, server)
);

CREATE TABLE registrations (
    server        TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    record        TEXT NOT NULL,
    secret_key_id TEXT,
    client_secret BYTEA,
    PRIMARY KEY (server, issuer)
);

CREATE TABLE tool_lists (
    user_id    TEXT   NOT NULL,
    server     TEXT   NOT NULL,
    tools      TEXT   NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, server)
);
