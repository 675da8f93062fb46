-- chatserver schema, version 5: attachments, replies, reactions and mentions.

-- An uploaded file. Its bytes are in attachment_chunks, inside this database, so a backup and
-- the one-file copy carry them. `complete` is 0 while the upload is still arriving (then
-- `size` counts what has arrived, for the quota); an attachment no message refers to is
-- removed 24 hours after its upload. AUTOINCREMENT: a stale id never names someone else's file.
CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    uploader_id  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL DEFAULT 0,
    -- Read from the bytes, never the client's claim.
    content_type TEXT NOT NULL DEFAULT 'application/octet-stream',
    sha256       TEXT,
    width        INTEGER,
    height       INTEGER,
    complete     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX attachments_by_uploader ON attachments(uploader_id);

-- What each user's attachments take, for the quota, kept by the triggers below so a check
-- never adds up rows: `bytes` counts each file's size plus 4 KiB (its row, its name), so many
-- tiny files cannot fill the disk past the quota.
CREATE TABLE attachment_usage (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    bytes   INTEGER NOT NULL DEFAULT 0,
    files   INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER attachment_usage_insert AFTER INSERT ON attachments
WHEN new.uploader_id IS NOT NULL BEGIN
    INSERT INTO attachment_usage (user_id, bytes, files) VALUES (new.uploader_id, new.size + 4096, 1)
    ON CONFLICT (user_id) DO UPDATE SET bytes = bytes + excluded.bytes, files = files + 1;
END;
CREATE TRIGGER attachment_usage_size AFTER UPDATE OF size ON attachments
WHEN new.uploader_id IS NOT NULL BEGIN
    UPDATE attachment_usage SET bytes = bytes + new.size - old.size WHERE user_id = new.uploader_id;
END;
CREATE TRIGGER attachment_usage_delete AFTER DELETE ON attachments
WHEN old.uploader_id IS NOT NULL BEGIN
    UPDATE attachment_usage SET bytes = bytes - old.size - 4096, files = files - 1
    WHERE user_id = old.uploader_id;
END;

-- The bytes, in pieces of at most 256 KiB: written and read a piece at a time. A rowid table
-- (not WITHOUT ROWID): its key lives in a separate index, so finding a chunk never reads the
-- 256 KiB payloads of its neighbours (measured: inserts 4x, reads 9x faster).
CREATE TABLE attachment_chunks (
    attachment_id INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    data          BLOB NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);

-- An image's thumbnail, made once on first request. `data` NULL: the image cannot have one
-- (too large, or it does not decode), so it is not tried again.
CREATE TABLE attachment_thumbnails (
    attachment_id INTEGER PRIMARY KEY REFERENCES attachments(id) ON DELETE CASCADE,
    content_type  TEXT,
    data          BLOB
);

-- Which messages carry which attachments, in the order they were given.
CREATE TABLE message_attachments (
    message_id    INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    attachment_id INTEGER NOT NULL REFERENCES attachments(id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
CREATE INDEX message_attachments_by_attachment ON message_attachments(attachment_id, message_id);

-- The message a message answers (in the same conversation).
ALTER TABLE messages ADD COLUMN reply_to INTEGER;

-- One row per user and emoji on a message; the rowid keeps first-reaction order.
CREATE TABLE reactions (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    UNIQUE (message_id, emoji, user_id)
);

-- Members a message mentions by @username (never its sender), with the conversation, so a
-- user's unread mentions in one conversation are one index range.
CREATE TABLE mentions (
    message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) WITHOUT ROWID;
CREATE INDEX mentions_by_user ON mentions(user_id, conversation_id, message_id);
