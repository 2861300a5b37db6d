-- Servers a user added for themselves: visible to that user only. NULL: the operator's.
ALTER TABLE catalog_servers ADD COLUMN owner TEXT;
