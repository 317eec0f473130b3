-- What an API token may do: `full` (everything its user may; every earlier token) or
-- `metrics` (only `GET /metrics`, for a Prometheus server).
-- Applied migrations are never edited: add a new numbered file.

ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
