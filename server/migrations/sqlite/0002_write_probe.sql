-- One row written and deleted to learn whether the store takes writes
-- again after they failed (a full disk); empty otherwise.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY NOT NULL,
    body BLOB NOT NULL
);
