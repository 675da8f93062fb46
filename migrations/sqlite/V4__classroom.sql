-- chatserver schema, version 4: announcement groups, muting, and the command line's events.

-- 'everyone' may post, or only 'admins' (and the owner): an announcement group.
ALTER TABLE conversations ADD COLUMN posting TEXT NOT NULL DEFAULT 'everyone'
    CHECK (posting IN ('everyone', 'admins'));

-- A muted member's sends are refused until then (RFC 3339 UTC with milliseconds, as the API
-- writes times); NULL when not muted.
ALTER TABLE members ADD COLUMN muted_until TEXT;

-- Membership changes made by the command line (another process than the server): the running
-- server publishes them to the sockets concerned, then deletes them.
CREATE TABLE cli_events (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('member_added', 'member_removed')),
    conversation_id INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    role            TEXT NOT NULL DEFAULT 'member'
);
