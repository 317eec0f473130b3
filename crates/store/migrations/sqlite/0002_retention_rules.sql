-- Retention rules of the built-in registry, one per repository.
CREATE TABLE retention_rules (
    repository                    TEXT PRIMARY KEY,
    keep_newest_tags              BIGINT,
    delete_untagged_older_than_ms BIGINT,
    updated_at                    BIGINT NOT NULL
);
