-- Persistent volumes (issue 16): a team's named volumes as Berth records them. The engine
-- holds their data (Docker volumes named `<namespace>_<team>_<name>[_<slot>]`); a row exists
-- from the first deploy that mounts the volume until it is deleted, and an engine volume
-- without a row is removed by the volume keeper. `size_bytes` is the last measurement (every
-- slot of a per-instance volume together), summed for the team's volume storage quota:
-- `teams.quota_volume_bytes` (NULL: unlimited; teams already limited on registry storage get
-- the default 20 GiB) and `quota_requests.requested_volume_bytes`.
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

ALTER TABLE teams ADD COLUMN quota_volume_bytes BIGINT;
UPDATE teams SET quota_volume_bytes = 21474836480 WHERE quota_registry_bytes IS NOT NULL;
ALTER TABLE quota_requests ADD COLUMN requested_volume_bytes BIGINT;
