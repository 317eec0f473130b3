-- What the leader publishes for the other servers (berth_controller::sharing), one body per key,
-- written only by the holder of the lease's current term.
CREATE TABLE published (
    key          TEXT   NOT NULL PRIMARY KEY,
    epoch        BIGINT NOT NULL,
    body         TEXT   NOT NULL,
    published_at BIGINT NOT NULL
);
