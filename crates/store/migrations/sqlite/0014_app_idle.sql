-- Scale to zero when idle: each app's idle timeout and, while Berth keeps it at 0 instances
-- because it idled, the instance count it comes back to — as JSON in its row
-- (`{"timeout_secs": 900, "idled": {"replicas": 2, "since": 1700000000000}}`, `{}` for none).
-- Applied migrations are never edited: add a new numbered file.

ALTER TABLE apps ADD COLUMN idle_json TEXT NOT NULL DEFAULT '{}';
