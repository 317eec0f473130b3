-- Nodes and the platform's own events (issue 15).
--
-- `nodes`: what admins set on a node — its labels (`datacenter`, `zone`, free-form) as a JSON
-- object — keyed by the engine's node name. What a node measures lives in memory only.
--
-- `platform_events`: events that belong to no app — a node crossing a threshold or
-- recovering, the cluster needing another node — apart from `events`, so no app timeline (and
-- no team) can ever list them. `subject` is `node/<name>` or `cluster`.
--
-- Numbered 0016 on purpose: 0015 belongs to another branch (autoscaling). Applied migrations
-- are never edited: add a new numbered file.

CREATE TABLE nodes (
    name        TEXT   PRIMARY KEY,
    labels_json TEXT   NOT NULL DEFAULT '{}',
    updated_at  BIGINT NOT NULL
);

CREATE TABLE platform_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    kind    TEXT    NOT NULL,
    message TEXT    NOT NULL,
    params  TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX platform_events_subject_id ON platform_events (subject, id);
