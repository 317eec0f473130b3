-- The built-in registry's metadata (tags, manifest records, blob links, upload records): one
-- value per '/'-separated key, shared by every server of the installation. Keys compare by
-- their bytes, so a key prefix is a range.
CREATE TABLE registry_metadata (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);
