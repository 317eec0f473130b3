-- Persistent volumes (issue 16): a team's named volumes as Berth records them. The engine
-- holds their data (Docker volumes named `<namespace>_<team>_<name>[_<slot>]`); a row exists
-- from the first deploy that mounts the volume until it is deleted, and an engine volume
-- without a row is removed by the volume keeper. `size_bytes` is the last measurement (every
-- slot of a per-instance volume together), summed for the team's volume storage quota.
-- Applied migrations are never edited: add a new numbered file.

CREATE TABLE volumes (
    team        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    scope       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT   NOT NULL,
    size_bytes  BIGINT,
    measured_at BIGINT,
    PRIMARY KEY (team, name)
);
