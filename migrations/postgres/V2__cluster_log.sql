-- Instances joined by a broker (--broker): every write batch takes the next number from
-- cluster_head (the row lock also orders the batches of all instances, so message ids follow
-- commit order) and stores its events under that number in cluster_log, in the same
-- transaction. The broker carries them to the other instances; an instance that sees a number
-- skipped, or loses the broker, reads the missing ones here. Rows are kept for ten minutes.
-- `name` names the database on the broker (its subjects), so instances find each other
-- however their --db spells the address.
CREATE TABLE cluster_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL
);
INSERT INTO cluster_head (id, seq, name) VALUES (1, 0, md5(random()::text || clock_timestamp()::text));

CREATE TABLE cluster_log (
    seq BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cluster_log_at ON cluster_log (at);
