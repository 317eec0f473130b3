-- What each app reserves, kept in its row so quota admission sums a team's usage with one
-- indexed query instead of reading every app and its current revision.
--
-- `reserved_*` is `berth_core::quota::app_usage(replicas, resources of current_revision)`:
-- replicas × the CPU (memory) limit, 0 for an unlimited resource, and `replicas` instances;
-- each clamped to the largest BIGINT. The store writes them in the same statement as every
-- change of `replicas`, `team` or `current_revision`; existing rows are filled from their
-- current revision here (a missing revision counts as unlimited, like the API did).
-- `apps_team_name` serves the per-team sums and the paginated app listing.
-- Applied migrations are never edited: add a new numbered file instead.

ALTER TABLE apps ADD COLUMN reserved_cpu_millis BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN reserved_memory_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN reserved_instances BIGINT NOT NULL DEFAULT 0;

-- A product beyond BIGINT becomes REAL in SQLite; MIN brings it back to the largest BIGINT.
UPDATE apps SET
    reserved_instances = replicas,
    reserved_cpu_millis = COALESCE(
        (SELECT CAST(MIN(apps.replicas * json_extract(r.template_json, '$.resources.cpu_millis'),
                         9223372036854775807) AS INTEGER)
         FROM revisions AS r WHERE r.app = apps.name AND r.number = apps.current_revision),
        0),
    reserved_memory_bytes = COALESCE(
        (SELECT CAST(MIN(apps.replicas * json_extract(r.template_json, '$.resources.memory_bytes'),
                         9223372036854775807) AS INTEGER)
         FROM revisions AS r WHERE r.app = apps.name AND r.number = apps.current_revision),
        0);

CREATE INDEX apps_team_name ON apps (team, name);
