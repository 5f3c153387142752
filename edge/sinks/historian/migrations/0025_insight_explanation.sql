-- inference: why an alarm was raised, stored with the insight. The inference stage fills it on warning and
-- alarm rows (inference/explain): the leading features with value, training baseline and deviation, and a
-- one-line summary (docs/explanations.md). NULL on ok rows and on rows written before this migration.
-- The outbox trigger (0040) copies whole rows, so the MQTT payload can summarize it.

ALTER TABLE insights ADD COLUMN IF NOT EXISTS explanation jsonb;
