-- A Cove device's local database. Every `value` is sealed with the storage
-- key (see src/localdb.rs); only row keys are plain.

CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,      -- a setting or piece of sync state
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE docs (
    doc INTEGER PRIMARY KEY NOT NULL,   -- 0 shared, 1 partner-a, 2 partner-b
    value BLOB NOT NULL                 -- the saved Automerge document
);

CREATE TABLE doc_chunks (
    id INTEGER PRIMARY KEY NOT NULL,    -- storing order
    doc INTEGER NOT NULL,
    value BLOB NOT NULL                 -- changes made after the document's full save
);
CREATE INDEX doc_chunks_by_doc ON doc_chunks (doc, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY NOT NULL,    -- send order
    value BLOB NOT NULL                 -- a sealed envelope not yet stored by the relay
);

CREATE TABLE sent (
    id INTEGER PRIMARY KEY NOT NULL,
    value BLOB NOT NULL                 -- an envelope the relay stored, kept to re-send after a relay restore
);

CREATE TABLE pending (
    id INTEGER PRIMARY KEY NOT NULL,
    value BLOB NOT NULL                 -- an envelope held back until its predecessors arrive
);

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY NOT NULL,
    value BLOB NOT NULL                 -- an envelope that failed verification, and why
);

CREATE TABLE journal (
    id INTEGER PRIMARY KEY NOT NULL,
    value BLOB NOT NULL                 -- a private note; never leaves this device
);
