-- The server catalog (see migrations/sqlite/0002_catalog.sql), in PostgreSQL's types.
CREATE TABLE catalog_servers (
    name       TEXT   NOT NULL PRIMARY KEY,
    definition TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE catalog_version (
    id      INTEGER NOT NULL PRIMARY KEY,
    version BIGINT  NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
