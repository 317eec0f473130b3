-- The health the controllers' prober found for each instance, so every server shows it.
CREATE TABLE instance_health (
    container_id TEXT   NOT NULL PRIMARY KEY,
    app          TEXT   NOT NULL,
    health_json  TEXT   NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX instance_health_app ON instance_health (app);
