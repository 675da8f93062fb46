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
