-- The build each webhook delivery started, recorded with the delivery in one transaction, so a
-- redelivery is answered with that build instead of a guess.
--
-- NULL for deliveries recorded before this migration. No foreign key: builds are pruned on
-- their own schedule while their delivery is still remembered, so the store checks that the
-- build exists when it reads the id back. BIGINT like every other reference to an id (builds.id
-- is 64 bits; PostgreSQL: BIGSERIAL or an identity column).
-- Applied migrations are never edited: add a new numbered file instead.

ALTER TABLE webhook_deliveries ADD COLUMN build_id BIGINT;
