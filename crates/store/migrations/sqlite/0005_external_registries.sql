-- External registries a team browses through Berth. The password column holds what the
-- server's secret box sealed (`v1.` + base64), never the plaintext; NULL: no password.
-- Applied migrations are never edited: add a new numbered file instead.

CREATE TABLE external_registries (
    name            TEXT   NOT NULL PRIMARY KEY,
    team            TEXT   NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    url             TEXT   NOT NULL,
    username        TEXT,
    sealed_password TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX external_registries_team ON external_registries (team);
