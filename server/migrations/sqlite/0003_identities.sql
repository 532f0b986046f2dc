-- Partner identities the membership log pins, so that a device recovering
-- with a recovery phrase can find its plan. Keep in step with
-- ../postgres/0003_identities.sql.
CREATE TABLE identities (
    identity BLOB NOT NULL,                 -- Ed25519 public key
    plan BLOB NOT NULL,
    PRIMARY KEY (identity, plan)
);
