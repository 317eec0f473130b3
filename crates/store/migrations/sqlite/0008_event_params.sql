-- The values an event's message is made of (a JSON object of strings: `from`, `to`, `reason`,
-- `code`…), so a client can say the event in its own language from its kind and these.
--
-- '{}' for events recorded before this migration (clients fall back to the English message).
-- Applied migrations are never edited: add a new numbered file instead.

ALTER TABLE events ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
