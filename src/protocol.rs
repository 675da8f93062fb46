//! The socket's contract, whole: every frame a client may send (`ClientFrame`) and every frame
//! the server sends (`ServerFrame`), each a JSON text frame tagged by `type`. docs/API.md
//! describes the same frames for people.

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::Error;
use crate::model::{AttachmentId, Group, GroupId, Message, MessageId, Reaction, Role, UserId};

/// What a client sends.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Stored, answered with `ack`, and sent to every member as `group_message`.
    Send {
        group_id: GroupId,
        /// May be empty (or absent) when there are attachments.
        content: Option<String>,
        client_id: Option<String>,
        /// The sender's own uploads, at most ten.
        #[serde(default)]
        attachment_ids: Vec<AttachmentId>,
        /// A message of the same conversation that this one answers.
        reply_to: Option<MessageId>,
    },
    /// `typing` to the other members; never stored.
    Typing {
        group_id: GroupId,
    },
    /// Moves the read marker, as `POST /v1/groups/{id}/read`.
    Read {
        group_id: GroupId,
        message_id: MessageId,
    },
    Ping,
}

/// A frame that could not be read, and the `client_id` it carried (for the `error` answer).
#[derive(Debug)]
pub struct BadFrame {
    pub error: Error,
    pub client_id: Option<String>,
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<ClientFrame, BadFrame> {
        let bad = |message: String, client_id| BadFrame {
            error: Error::invalid("invalid_json", message),
            client_id,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("frame is not JSON: {e}"), None))?;
        if !value.is_object() {
            return Err(bad("a frame is a JSON object with a \"type\"".into(), None));
        }
        let client_id = value
            .get("client_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        ClientFrame::deserialize(value).map_err(|e| bad(format!("bad frame: {e}"), client_id))
    }
}

/// What the server sends.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// After the subscriptions (and the replay, with `since`): the socket is live.
    Ready {
        user_id: UserId,
        group_ids: Vec<GroupId>,
    },
    GroupMessage(Message),
    MessageEdited {
        id: MessageId,
        group_id: GroupId,
        content: String,
        edited_at: Option<String>,
        /// Recomputed from the new content.
        mentions: Vec<UserId>,
    },
    MessageDeleted {
        id: MessageId,
        group_id: GroupId,
    },
    /// A message's reactions changed: all of them, as the message object has them.
    MessageReactions {
        id: MessageId,
        group_id: GroupId,
        reactions: Vec<Reaction>,
    },
    Typing {
        group_id: GroupId,
        user_id: UserId,
        username: String,
    },
    Read {
        group_id: GroupId,
        user_id: UserId,
        message_id: MessageId,
    },
    Presence {
        user_id: UserId,
        online: bool,
        last_seen: Option<String>,
    },
    MemberAdded {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
        /// Not sent: the conversation's newest message id when the member was added, where
        /// the new member's sockets start reading it.
        #[serde(skip)]
        since: MessageId,
    },
    MemberRemoved {
        group_id: GroupId,
        user_id: UserId,
    },
    /// A member's role changed, or they were muted or unmuted.
    MemberUpdated {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
        muted_until: Option<String>,
    },
    GroupUpdated {
        group_id: GroupId,
        group: Group,
    },
    GroupDeleted {
        group_id: GroupId,
    },
    /// Answers the socket's own `send` once it is committed.
    Ack {
        client_id: Option<String>,
        id: MessageId,
        group_id: GroupId,
        timestamp: String,
    },
    Error {
        code: &'static str,
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Pong,
}

impl ServerFrame {
    pub fn ack(m: &Message) -> ServerFrame {
        ServerFrame::Ack {
            client_id: m.client_id.clone(),
            id: m.id,
            group_id: m.group_id,
            timestamp: m.timestamp.clone(),
        }
    }

    /// The one mapping of a domain error to the socket's `error` frame.
    pub fn error(err: &Error, client_id: Option<&str>) -> ServerFrame {
        ServerFrame::Error {
            code: err.code(),
            error: err.public_message(),
            client_id: client_id.map(str::to_string),
        }
    }

    /// The frame as the socket sends it.
    pub fn to_text(&self) -> Utf8Bytes {
        // Every field is a string, number, bool or a struct of them: this cannot fail.
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_by_type_and_keep_the_contracts_fields() {
        let ready = ServerFrame::Ready {
            user_id: UserId(1),
            group_ids: vec![GroupId(1)],
        };
        assert_eq!(
            ready.to_text().as_str(),
            r#"{"type":"ready","user_id":1,"group_ids":[1]}"#
        );
        let added = ServerFrame::MemberAdded {
            group_id: GroupId(2),
            user_id: UserId(3),
            role: Role::Member,
            since: MessageId(9),
        };
        assert_eq!(
            added.to_text().as_str(),
            r#"{"type":"member_added","group_id":2,"user_id":3,"role":"member"}"#
        );
        let err = ServerFrame::error(&Error::forbidden("no"), None);
        assert_eq!(
            err.to_text().as_str(),
            r#"{"type":"error","code":"forbidden","error":"no"}"#
        );
    }

    #[test]
    fn client_frames_parse_and_bad_ones_name_their_client_id() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"typing","group_id":4}"#).unwrap(),
            ClientFrame::Typing {
                group_id: GroupId(4)
            }
        );
        let bad = ClientFrame::parse(r#"{"type":"send","client_id":"c1"}"#).unwrap_err();
        assert_eq!(bad.client_id.as_deref(), Some("c1"));
        assert_eq!(bad.error.code(), "invalid_json");
        assert!(ClientFrame::parse("[1]").unwrap_err().client_id.is_none());
    }
}
