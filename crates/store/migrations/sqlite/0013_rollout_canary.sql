-- How far the canary of an app's rollout in progress got (`berth_core::canary::CanaryProgress`
-- as JSON: when it started taking traffic, whether its verdict passed); NULL when the rollout
-- has no canary or it has not started. Applied migrations are never edited: add a new
-- numbered file.

ALTER TABLE apps ADD COLUMN rollout_canary_json TEXT;
