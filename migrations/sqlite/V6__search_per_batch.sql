-- Search indexing once per write batch instead of once per message.
--
-- V2's trigger indexed each message inside its own write's savepoint, and FTS5 writes its
-- pending index to disk at every savepoint's release: under load each message became a
-- segment of its own, merged again and again (a third of the writer thread's time). A new
-- message is now queued here, and the writer indexes the whole queue just before the batch's
-- commit (`store::search::index_queued`), in the same transaction: a committed message is
-- always searchable, and each batch adds one segment. Whatever writes messages outside the
-- server (the command line) leaves them queued, and the server indexes them when it opens the
-- database.
CREATE TABLE messages_fts_queue (id INTEGER PRIMARY KEY);

DROP TRIGGER messages_fts_insert;
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts_queue (id) VALUES (new.id);
END;

-- A queued message is not in the index yet: an edit needs nothing (the queue indexes the
-- content the message has at the commit), a delete only leaves the queue.
DROP TRIGGER messages_fts_delete;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content
        WHERE NOT EXISTS (SELECT 1 FROM messages_fts_queue WHERE id = old.id);
    DELETE FROM messages_fts_queue WHERE id = old.id;
END;

DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages_fts_queue WHERE id = old.id) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;
