-- How apps are reached from outside: each app's custom domains and whether it is internal, as
-- JSON in its row (`berth_core::routes::AppRoutes`), and `app_domains`, one row per claimed
-- (host, path) kept by triggers from that JSON, whose primary key makes a domain belong to one
-- app even when two apps claim it at the same moment. Reservations keep a domain (and every
-- name under it) for one team. Applied migrations are never edited: add a new numbered file.

ALTER TABLE apps ADD COLUMN routes_json TEXT NOT NULL DEFAULT '{}';

CREATE TABLE app_domains (
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    app  TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    PRIMARY KEY (host, path)
);
CREATE INDEX app_domains_app ON app_domains (app);

CREATE TRIGGER app_domains_on_insert AFTER INSERT ON apps
BEGIN
    INSERT INTO app_domains (host, path, app)
    SELECT json_extract(value, '$.host'), json_extract(value, '$.path'), NEW.name
    FROM json_each(NEW.routes_json, '$.domains');
END;

CREATE TRIGGER app_domains_on_update AFTER UPDATE OF routes_json ON apps
WHEN OLD.routes_json IS NOT NEW.routes_json
BEGIN
    DELETE FROM app_domains WHERE app = NEW.name;
    INSERT INTO app_domains (host, path, app)
    SELECT json_extract(value, '$.host'), json_extract(value, '$.path'), NEW.name
    FROM json_each(NEW.routes_json, '$.domains');
END;

CREATE TABLE domain_reservations (
    domain     TEXT   NOT NULL PRIMARY KEY,
    team       TEXT   NOT NULL,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
