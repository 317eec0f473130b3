-- Team secrets (issue 16): `secrets` holds each secret's name and history (never its value);
-- `secret_versions` holds its sealed values, one per version — the latest and up to nine
-- before it, for rollbacks to revisions that use them. Values are sealed by the server's key
-- (XChaCha20-Poly1305) bound to `secret:<team>/<name>:<version>`; the store never sees one
-- in the clear. Applied migrations are never edited: add a new numbered file.

CREATE TABLE secrets (
    team       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    created_at BIGINT  NOT NULL,
    created_by TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL,
    updated_by TEXT    NOT NULL,
    PRIMARY KEY (team, name)
);

CREATE TABLE secret_versions (
    team       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    sealed     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (team, name, version)
);
