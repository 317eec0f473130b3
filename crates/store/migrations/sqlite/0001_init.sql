-- Berth's initial schema for SQLite.
--
-- Types stay portable (TEXT, BIGINT) so the PostgreSQL schema can mirror this one; the only
-- SQLite-specific piece is `INTEGER PRIMARY KEY AUTOINCREMENT`, which guarantees event ids are
-- never reused after old events are pruned (clients page with `after_id`).
-- Enum-like columns (rollout_phase, kind) have no CHECK: adding a variant must not need a
-- table rebuild; the store rejects unknown values when it reads them back.
-- Applied migrations are never edited: add a new numbered file instead.

CREATE TABLE teams (
    name       TEXT   NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE apps (
    name                    TEXT   NOT NULL PRIMARY KEY,
    team                    TEXT   NOT NULL,
    replicas                BIGINT NOT NULL,
    strategy_json           TEXT   NOT NULL,
    dependencies_json       TEXT   NOT NULL,
    current_revision        BIGINT NOT NULL,
    stable_revision         BIGINT,
    latest_revision         BIGINT NOT NULL,
    rollout_revision        BIGINT NOT NULL,
    rollout_phase           TEXT   NOT NULL,
    rollout_failed_revision BIGINT,
    rollout_message         TEXT   NOT NULL,
    rollout_started_at      BIGINT NOT NULL,
    rollout_progress_at     BIGINT NOT NULL,
    rollout_available       BIGINT NOT NULL,
    rollout_finished_at     BIGINT,
    next_ordinal            BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    version                 BIGINT NOT NULL
);

CREATE TABLE revisions (
    app           TEXT   NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    template_json TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    PRIMARY KEY (app, number)
);

-- No foreign key to apps: an app's last events (e.g. its deletion) may outlive it.
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    app      TEXT    NOT NULL,
    at       BIGINT  NOT NULL,
    kind     TEXT    NOT NULL,
    instance TEXT,
    revision BIGINT,
    message  TEXT    NOT NULL
);

CREATE INDEX events_app_id ON events (app, id);
