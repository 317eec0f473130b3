-- Teams as a hard boundary: git credentials bound to the origin they were given for, and the
-- commits push webhooks have built, so a replayed delivery never builds (or rolls back) again.
--
-- `credentials_origin` is the `scheme://host:port` of the repository address the credentials
-- came with (NULL for credentials stored before: bound to the address stored with them).
-- `webhook_built_commits` remembers every commit a webhook built per pipeline; it is not
-- pruned with builds (a pruned build's commit must stay built) and goes with the pipeline.
-- `webhook_superseded_commits` remembers, per branch, the `before` commit of each push a
-- webhook built: a later delivery whose pushed commit is one of them is older than what was
-- built. `build_id` has no foreign key (builds are pruned on their own schedule).
-- Applied migrations are never edited: add a new numbered file instead.

ALTER TABLE pipelines ADD COLUMN credentials_origin TEXT;

CREATE TABLE webhook_built_commits (
    team       TEXT   NOT NULL,
    pipeline   TEXT   NOT NULL,
    commit_sha TEXT   NOT NULL,
    branch     TEXT   NOT NULL,
    build_id   BIGINT NOT NULL,
    built_at   BIGINT NOT NULL,
    PRIMARY KEY (team, pipeline, commit_sha),
    FOREIGN KEY (team, pipeline) REFERENCES pipelines (team, name) ON DELETE CASCADE
);

CREATE TABLE webhook_superseded_commits (
    team        TEXT   NOT NULL,
    pipeline    TEXT   NOT NULL,
    branch      TEXT   NOT NULL,
    commit_sha  TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (team, pipeline, branch, commit_sha),
    FOREIGN KEY (team, pipeline) REFERENCES pipelines (team, name) ON DELETE CASCADE
);
