//! What the server talks about: ids, validated values and the objects of the API.

mod extras;
mod ids;
mod records;
mod text;

pub use extras::{
    mentioned_names, Attachment, Emoji, FileName, Reaction, ReplyQuote, INLINE_IMAGES,
    MAX_ATTACHMENTS, MAX_REACTIONS,
};
pub use ids::{AttachmentId, GroupId, MessageId, UserId};
pub use records::{
    Group, GroupSummary, GroupWithMembers, Kind, Member, Message, Peer, Posting, Profile,
    PublicUser, Role,
};
pub use text::{
    page_limit, search_text, AvatarUrl, ClientId, Content, DisplayName, Email, GroupName, Password,
    PublicKey, Username,
};

/// How the API writes a time: RFC 3339 in UTC with milliseconds (`2026-11-21T09:30:00.000Z`),
/// the text SQL's `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` gives too.
pub const API_TIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);
