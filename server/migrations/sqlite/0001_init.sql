-- Cove relay schema, SQLite. Keep in step with ../postgres/0001_init.sql:
-- the same statements run on both.

CREATE TABLE plans (
    id BLOB PRIMARY KEY NOT NULL,           -- 16-byte plan id
    head INTEGER NOT NULL,                  -- newest cursor assigned
    compacted INTEGER NOT NULL,             -- changes at or below may be compacted away
    envelope_count INTEGER NOT NULL,        -- for the quota
    envelope_bytes INTEGER NOT NULL,        -- for the quota
    created_at INTEGER NOT NULL             -- unix seconds
) WITHOUT ROWID;

CREATE TABLE membership (
    plan BLOB NOT NULL,
    idx INTEGER NOT NULL,
    entry BLOB NOT NULL,                    -- the signed entry, as received
    PRIMARY KEY (plan, idx)
) WITHOUT ROWID;

CREATE TABLE devices (
    plan BLOB NOT NULL,
    device BLOB NOT NULL,                   -- Ed25519 public key
    active INTEGER NOT NULL,                -- 1 member, 0 revoked
    acked INTEGER NOT NULL,                 -- highest cursor it has applied
    PRIMARY KEY (plan, device)
) WITHOUT ROWID;

CREATE TABLE envelopes (
    plan BLOB NOT NULL,
    cursor INTEGER NOT NULL,
    sender BLOB NOT NULL,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    doc INTEGER NOT NULL,
    hash BLOB NOT NULL,                     -- tells a resend from an equivocation
    size INTEGER NOT NULL,
    expires_at INTEGER,                     -- signals only
    body BLOB NOT NULL,                     -- the sealed envelope
    PRIMARY KEY (plan, cursor)
);
CREATE UNIQUE INDEX envelopes_by_stream ON envelopes (plan, sender, kind, doc, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE snapshots (
    plan BLOB NOT NULL,
    doc INTEGER NOT NULL,
    covers INTEGER NOT NULL,
    sender BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (plan, doc)
);

CREATE TABLE pairings (
    nameplate TEXT PRIMARY KEY NOT NULL,
    state INTEGER NOT NULL,                 -- 0 open, 1 joined, 2 done, 3 burned
    expires_at INTEGER NOT NULL,
    opener BLOB NOT NULL,
    joiner BLOB
);

CREATE TABLE pairing_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    nameplate TEXT NOT NULL,
    side INTEGER NOT NULL,                  -- 0 opener, 1 joiner
    body BLOB NOT NULL
);
CREATE INDEX pairing_messages_by_nameplate ON pairing_messages (nameplate, side, id);
