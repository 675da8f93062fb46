//! Direct conversations: one per pair of users, created on first use, with exactly its two
//! members and none of a group's member or name operations.

mod basics;
mod boundaries;
mod messaging;

use crate::helpers::*;
use serde_json::Value;

#[track_caller]
fn assert_direct_shape(c: &Value, me: &Session, peer: &Session) {
    for key in [
        "id",
        "kind",
        "name",
        "owner_id",
        "created_at",
        "role",
        "peer",
    ] {
        assert!(
            c.get(key).is_some(),
            "direct conversation lacks `{key}`: {c}"
        );
    }
    assert!(c["id"].is_i64(), "{c}");
    assert_eq!(c["kind"], "direct", "{c}");
    assert_eq!(c["name"], Value::Null, "{c}");
    assert_eq!(c["owner_id"], Value::Null, "{c}");
    assert_eq!(c["role"], "member", "{c}");
    assert_timestamp(&c["created_at"]);
    assert_eq!(c["peer"]["id"], peer.id, "peer of {}: {c}", me.username);
    assert_eq!(c["peer"]["username"], peer.username.as_str(), "{c}");
    assert!(c["peer"].get("display_name").is_some(), "{c}");
    assert!(c["peer"].get("email").is_none(), "peer leaks email: {c}");
}

/// The next `group_message`. News that the peer joined `conv` may still be on its way (the
/// contract orders messages, not membership news against them), so `member_added` frames of
/// `conv` may come first; anything else fails.
async fn next_message(ws: &mut Ws, conv: i64) -> Value {
    loop {
        let f = ws.next_json().await;
        if f["type"] == "group_message" {
            return f;
        }
        assert!(
            f["type"] == "member_added" && f["group_id"] == conv,
            "expected a group_message, got {f}"
        );
    }
}
