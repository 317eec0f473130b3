-- Accounts: users, their team memberships and their API tokens.
--
-- Portable to PostgreSQL except `INTEGER PRIMARY KEY AUTOINCREMENT` (there: BIGSERIAL or an
-- identity column); AUTOINCREMENT guarantees a deleted user's or token's id is never handed
-- out again, so nothing left pointing at an old id can come to mean someone else.
-- Emails are unique regardless of case (the expression index works in both databases).
-- Booleans are BOOLEAN (SQLite stores 0/1). Roles are TEXT without CHECK, like other enums.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE memberships (
    team    TEXT   NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT   NOT NULL,
    PRIMARY KEY (team, user_id)
);

CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    created_at   BIGINT  NOT NULL,
    revoked      BOOLEAN NOT NULL
);

CREATE INDEX api_tokens_user ON api_tokens (user_id);
