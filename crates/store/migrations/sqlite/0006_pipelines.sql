-- Code pipelines, their builds and the webhook deliveries already seen.
--
-- Credentials and webhook secrets hold what the server's secret box sealed, never the
-- plaintext. `next_build_number` is written only by the store when it creates a build, so build
-- numbers are never reused while the pipeline exists. Build ids use AUTOINCREMENT (PostgreSQL:
-- BIGSERIAL or an identity column) so they increase, are never reused and can be paged with
-- `before_id`. `deploy_app` has no foreign key: a pipeline outlives the app it rolls out to (its
-- deploy step then fails with a reason). Steps are a JSON document; enum-like columns (status,
-- trigger_kind) have no CHECK: the store rejects unknown values when it reads them back.
-- Applied migrations are never edited: add a new numbered file instead.

CREATE TABLE pipelines (
    team                  TEXT   NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    name                  TEXT   NOT NULL,
    repository_url        TEXT   NOT NULL,
    branch_pattern        TEXT   NOT NULL,
    dockerfile            TEXT   NOT NULL,
    context               TEXT   NOT NULL,
    build_args_json       TEXT   NOT NULL,
    test_command_json     TEXT   NOT NULL,
    target_repository     TEXT   NOT NULL,
    deploy_app            TEXT,
    sealed_credentials    TEXT,
    sealed_webhook_secret TEXT,
    created_by            TEXT   NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    next_build_number     BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (team, name)
);

CREATE TABLE builds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    team            TEXT    NOT NULL,
    pipeline        TEXT    NOT NULL,
    number          BIGINT  NOT NULL,
    trigger_kind    TEXT    NOT NULL,
    triggered_by    TEXT    NOT NULL,
    commit_sha      TEXT,
    branch          TEXT,
    author          TEXT,
    author_email    TEXT,
    message         TEXT,
    status          TEXT    NOT NULL,
    steps_json      TEXT    NOT NULL,
    image_digest    TEXT,
    rollout_outcome TEXT,
    reason          TEXT,
    created_at      BIGINT  NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    FOREIGN KEY (team, pipeline) REFERENCES pipelines (team, name) ON DELETE CASCADE,
    UNIQUE (team, pipeline, number)
);

CREATE INDEX builds_pipeline ON builds (team, pipeline, id);
CREATE INDEX builds_team ON builds (team, id);
CREATE INDEX builds_status ON builds (status);

CREATE TABLE webhook_deliveries (
    team        TEXT   NOT NULL,
    pipeline    TEXT   NOT NULL,
    delivery_id TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (team, pipeline, delivery_id),
    FOREIGN KEY (team, pipeline) REFERENCES pipelines (team, name) ON DELETE CASCADE
);

CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
