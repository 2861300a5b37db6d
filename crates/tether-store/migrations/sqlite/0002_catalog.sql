-- The server catalog: servers added while Tether runs (the admin API), beside the configuration
-- file's. `definition` is the server's [[servers]] entry as JSON. Times are milliseconds since
-- the Unix epoch.
CREATE TABLE catalog_servers (
    name       TEXT    NOT NULL PRIMARY KEY,
    definition TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row, bumped by every change of the catalog: replicas poll it to notice one.
CREATE TABLE catalog_version (
    id      INTEGER NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
