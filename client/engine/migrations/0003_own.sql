-- What a device remembers of its newest envelopes (position, hash, when
-- made, where a page showed it), a row each, for delivery receipts. It was
-- kept inside the sealed checkpoint book, which every transaction wrote
-- whole; that book's copy is moved here at the next write.
CREATE TABLE own (
    id INTEGER PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
