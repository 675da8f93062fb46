//! The objects the API hands out, as the contract shapes them: messages, conversations and their
//! members, and users. The store reads them, services fill in what the store cannot know (who is
//! online), and HTTP and the socket serialise them.

use serde::Serialize;
use utoipa::ToSchema;

use super::extras::{Attachment, Reaction, ReplyQuote};
use super::ids::{GroupId, MessageId, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Message {
    pub id: MessageId,
    pub group_id: GroupId,
    pub sender_id: Option<UserId>,
    pub sender_username: Option<String>,
    pub content: String,
    pub timestamp: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub client_id: Option<String>,
    /// In the order the sender gave them; empty for a deleted message.
    pub attachments: Vec<Attachment>,
    /// The message this one answers.
    pub reply_to: Option<ReplyQuote>,
    /// In the order each emoji was first used.
    pub reactions: Vec<Reaction>,
    /// The members this message `@`-mentions.
    pub mentions: Vec<UserId>,
}

/// A member's role in a group. Both members of a direct conversation are `member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Owners and admins rename a group and add and remove its members.
    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// Who may post in a group: everyone, or only its owner and admins (an announcement group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Posting {
    Everyone,
    Admins,
}

impl Posting {
    pub fn as_str(self) -> &'static str {
        match self {
            Posting::Everyone => "everyone",
            Posting::Admins => "admins",
        }
    }

    pub fn parse(s: &str) -> Option<Posting> {
        match s {
            "everyone" => Some(Posting::Everyone),
            "admins" => Some(Posting::Admins),
            _ => None,
        }
    }
}

/// A named group, or the one direct conversation of two users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Group,
    Direct,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::Direct => "direct",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "group" => Some(Kind::Group),
            "direct" => Some(Kind::Direct),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Group {
    pub id: GroupId,
    pub kind: Kind,
    pub name: Option<String>,
    pub owner_id: Option<UserId>,
    pub created_at: String,
    /// Who may post (`everyone` in a direct chat).
    pub posting: Posting,
    /// The caller's role; absent where the group is sent to everyone (events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// For a direct conversation, the other user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Peer {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupWithMembers {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<Member>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub group: Group,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    /// Unread messages that mention the caller.
    pub mention_count: i64,
    pub last_read_id: MessageId,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Member {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub joined_at: String,
    /// Filled in from the hub by the service; the database does not know who is connected.
    pub online: bool,
    pub last_seen: Option<String>,
    /// Until when the member's sends are refused; `null` when not muted.
    pub muted_until: Option<String>,
}

/// A user's own view of their account (the only place an email appears).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Profile {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub public_key: Option<String>,
    pub created_at: String,
}

/// What anyone signed in may see of a user.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicUser {
    pub id: UserId,
    pub username: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub public_key: Option<String>,
    /// Filled in from the hub by the service.
    pub online: bool,
    pub last_seen: Option<String>,
    pub created_at: String,
}
