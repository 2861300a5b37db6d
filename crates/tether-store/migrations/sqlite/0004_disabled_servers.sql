-- Servers an operator switched off (the file's or the catalog's): kept, but not served until
-- switched on again. A change bumps catalog_version like any catalog change.
CREATE TABLE disabled_servers (
    name TEXT NOT NULL PRIMARY KEY
);
