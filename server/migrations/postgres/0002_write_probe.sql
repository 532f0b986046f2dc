-- One row written and deleted to learn whether the store takes writes
-- again after they failed (a full disk); empty otherwise.
CREATE TABLE write_probe (
    id BIGINT PRIMARY KEY,
    body BYTEA NOT NULL
);
