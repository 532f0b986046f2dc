-- Cove relay schema, PostgreSQL. Keep in step with ../sqlite/0001_init.sql:
-- the same statements run on both.

CREATE TABLE plans (
    id BYTEA PRIMARY KEY NOT NULL,           -- 16-byte plan id
    head BIGINT NOT NULL,                  -- newest cursor assigned
    compacted BIGINT NOT NULL,             -- changes at or below may be compacted away
    envelope_count BIGINT NOT NULL,        -- for the quota
    envelope_bytes BIGINT NOT NULL,        -- for the quota
    created_at BIGINT NOT NULL             -- unix seconds
);

CREATE TABLE membership (
    plan BYTEA NOT NULL,
    idx BIGINT NOT NULL,
    entry BYTEA NOT NULL,                    -- the signed entry, as received
    PRIMARY KEY (plan, idx)
);

CREATE TABLE devices (
    plan BYTEA NOT NULL,
    device BYTEA NOT NULL,                   -- Ed25519 public key
    active BIGINT NOT NULL,                -- 1 member, 0 revoked
    acked BIGINT NOT NULL,                 -- highest cursor it has applied
    PRIMARY KEY (plan, device)
);

CREATE TABLE envelopes (
    plan BYTEA NOT NULL,
    cursor BIGINT NOT NULL,
    sender BYTEA NOT NULL,
    kind BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    doc BIGINT NOT NULL,
    hash BYTEA NOT NULL,                     -- tells a resend from an equivocation
    size BIGINT NOT NULL,
    expires_at BIGINT,                     -- signals only
    body BYTEA NOT NULL,                     -- the sealed envelope
    PRIMARY KEY (plan, cursor)
);
CREATE UNIQUE INDEX envelopes_by_stream ON envelopes (plan, sender, kind, doc, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE snapshots (
    plan BYTEA NOT NULL,
    doc BIGINT NOT NULL,
    covers BIGINT NOT NULL,
    sender BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (plan, doc)
);

CREATE TABLE pairings (
    nameplate TEXT PRIMARY KEY NOT NULL,
    state BIGINT NOT NULL,                 -- 0 open, 1 joined, 2 done, 3 burned
    expires_at BIGINT NOT NULL,
    opener BYTEA NOT NULL,
    joiner BYTEA
);

CREATE TABLE pairing_messages (
    id BIGSERIAL PRIMARY KEY,
    nameplate TEXT NOT NULL,
    side BIGINT NOT NULL,                  -- 0 opener, 1 joiner
    body BYTEA NOT NULL
);
CREATE INDEX pairing_messages_by_nameplate ON pairing_messages (nameplate, side, id);
