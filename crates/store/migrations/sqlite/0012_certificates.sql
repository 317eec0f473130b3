-- TLS certificates of apps' hosts, one per host: uploaded by a user or issued over ACME. The
-- chain is public; the private key column holds what the server's secret box sealed (`v1.` +
-- base64), never the plaintext. A certificate goes with its app. Applied migrations are never
-- edited: add a new numbered file instead.

CREATE TABLE certificates (
    host       TEXT   NOT NULL PRIMARY KEY,
    team       TEXT   NOT NULL,
    app        TEXT   NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    source     TEXT   NOT NULL CHECK (source IN ('uploaded', 'acme')),
    chain_pem  TEXT   NOT NULL,
    sealed_key TEXT   NOT NULL,
    names_json TEXT   NOT NULL,
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX certificates_app ON certificates (app);
