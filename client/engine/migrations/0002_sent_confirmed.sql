-- Own envelopes stay unconfirmed, whatever the relay answered, until a
-- fetched page shows them (0); then they are confirmed (1). Rows from
-- before this column were stored under the older rule: kept as confirmed.
ALTER TABLE sent ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX sent_by_confirmed ON sent (confirmed, id);
