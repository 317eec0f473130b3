-- Teams with quotas, browser sessions, quota requests, deployment templates, the audit log and
-- run-time settings.
--
-- Portable to PostgreSQL except `INTEGER PRIMARY KEY AUTOINCREMENT` (there: BIGSERIAL or an
-- identity column); AUTOINCREMENT keeps audit and request ids increasing and never reused, so
-- clients can page backwards with `before_id`.
-- A NULL quota column means unlimited. Existing teams keep an unlimited quota and get
-- `updated_at = created_at`.
-- Usernames in requests and audit records (`requested_by`, `decided_by`, `actor`) are plain
-- text without a foreign key: the record outlives the account. Audit records also outlive their
-- team (no foreign key on `audit_log.team`).
-- Enum-like columns (status, outcome) have no CHECK, like the others: the store rejects unknown
-- values when it reads them back.
-- Applied migrations are never edited: add a new numbered file instead.

ALTER TABLE teams ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE teams ADD COLUMN quota_cpu_millis BIGINT;
ALTER TABLE teams ADD COLUMN quota_memory_bytes BIGINT;
ALTER TABLE teams ADD COLUMN quota_instances BIGINT;
ALTER TABLE teams ADD COLUMN quota_registry_bytes BIGINT;
ALTER TABLE teams ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

UPDATE teams SET updated_at = created_at;

-- Keyed by the hash of the cookie's secret; the secret itself is never stored.
CREATE TABLE sessions (
    session_hash TEXT   NOT NULL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    source       TEXT   NOT NULL
);

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE quota_requests (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    team                     TEXT    NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    requested_by             TEXT    NOT NULL,
    requested_cpu_millis     BIGINT,
    requested_memory_bytes   BIGINT,
    requested_instances      BIGINT,
    requested_registry_bytes BIGINT,
    reason                   TEXT    NOT NULL,
    status                   TEXT    NOT NULL,
    created_at               BIGINT  NOT NULL,
    decided_by               TEXT,
    decided_at               BIGINT,
    comment                  TEXT
);

CREATE INDEX quota_requests_team ON quota_requests (team, id);

CREATE TABLE deployment_templates (
    team        TEXT   NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    params_json TEXT   NOT NULL,
    body_json   TEXT   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (team, name)
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT  NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    team    TEXT,
    object  TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    status  BIGINT  NOT NULL,
    detail  TEXT    NOT NULL
);

CREATE INDEX audit_log_team ON audit_log (team, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);

CREATE TABLE settings (
    key        TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
