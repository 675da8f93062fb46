-- Search by watermark: every message with an id above `messages_fts_indexed.upto` waits for the
-- search index, every message at or below it is in the index. It replaces V6's queue table.
--
-- Message ids only grow (AUTOINCREMENT), and the indexing (`store::search::index_waiting`)
-- takes every message above the mark at once, then moves the mark to the newest id: so the
-- messages that wait are always the newest ones, and a mark says which. A send no longer writes
-- a queue row: with the count of the queue the writer took at each commit, that was a B-tree
-- insert per message and one more WAL page per commit, a tenth of the writer thread's time per
-- message. Whatever stores messages behind the server's back (the command line, `chatserver
-- copy` into a new file) leaves them above the mark with nothing more to do.

CREATE TABLE messages_fts_indexed (upto INTEGER NOT NULL);

-- What waits in the queue is indexed now, so that the mark can start at the newest message.
INSERT INTO messages_fts (rowid, content)
    SELECT m.id, m.content FROM messages_fts_queue q JOIN messages m ON m.id = q.id;
INSERT INTO messages_fts_indexed (upto) VALUES ((SELECT coalesce(max(id), 0) FROM messages));

DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts_queue;

-- A message above the mark is not in the index yet: an edit needs nothing (the indexing takes
-- the content the message has then), nor does a delete.
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT upto FROM messages_fts_indexed) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN old.id <= (SELECT upto FROM messages_fts_indexed) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
