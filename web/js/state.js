// What every part of the client shares: the signed-in session and the conversations as the
// server last told us. Plain objects and maps; each module renders from them.

export const state = {
  /** {token, refresh_token, expires_at (ms), user} while signed in, else null. */
  session: null,
  /** Whether sign-up is open (from /v1/welcome). */
  registration: 'open',
  /** conversation id -> object from GET /v1/groups, kept up to date by socket events. */
  convs: new Map(),
  /** user id -> online (listings and presence events). */
  online: new Map(),
  /** conversation id -> Map(user id -> {name, timer}) of who is typing. */
  typing: new Map(),
  /** conversation id -> unsent composer text. */
  drafts: new Map(),
  /** The open conversation: {id, msgs, els, pending, members, hasMore, loading}, or null. */
  open: null,
  /** The highest message id the socket delivered: the `since` of the next connection. */
  maxId: null,
};

export const me = () => (state.session ? state.session.user.id : null);

/** The name people see: the display name when there is one. */
export const nameOf = (u) => (u && (u.display_name || u.username)) || '';

/** A conversation's title: the group's name, or the other person's name. */
export const title = (c) => (c.kind === 'direct' ? (c.peer ? nameOf(c.peer) : 'Direct chat') : c.name);

/** Owners and admins manage a group: rename, who may post, members. */
export const manages = (c) => c && c.kind === 'group' && (c.role === 'owner' || c.role === 'admin');
