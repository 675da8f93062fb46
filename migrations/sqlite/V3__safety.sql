-- chatserver schema, version 3: sessions that end before their tokens expire, blocking, and
-- the indexes the per-user caps count with.

-- Bumped when every session of a user ends at once (a password change, "log out everywhere"):
-- access tokens carry the epoch they were issued in, and older ones are refused.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

-- One login's session (a refresh-token family) ended early: by logout, or because a rotated
-- refresh token was presented again. Access tokens naming it are refused until they would
-- have expired anyway; then the row is purged.
CREATE TABLE ended_sessions (
    family   TEXT PRIMARY KEY,
    user_id  INTEGER NOT NULL,
    ended_at INTEGER NOT NULL
) WITHOUT ROWID;

-- X (blocker) blocks Y (blocked): Y cannot add X to a group, nor open or write a direct chat
-- with X.
CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;

CREATE INDEX conversations_by_owner ON conversations(owner_id) WHERE kind = 'group';
