-- CPU autoscaling: each app's autoscaling setting as JSON in its row
-- (`{"min":2,"max":10,"cpu_percent":60,"window_secs":60,"tolerance_percent":10,
-- "scale_down_stabilization_secs":300}`), NULL when the app is not autoscaled.
-- Applied migrations are never edited: add a new numbered file.

ALTER TABLE apps ADD COLUMN autoscale_json TEXT;
