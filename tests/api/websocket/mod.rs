//! The WebSocket: who receives what, in which order, and what happens to bad frames.

mod delivery;
mod frames;
mod ordering;

use crate::helpers::*;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;

/// A `group_message` frame must carry exactly the message the HTTP API returns.
#[track_caller]
fn assert_frame_is_message(frame: &Value, message: &Value) {
    assert_eq!(frame["type"], "group_message", "{frame}");
    assert_message_shape(frame);
    let mut fields = frame.clone();
    fields.as_object_mut().unwrap().remove("type");
    assert_eq!(
        &fields, message,
        "group_message differs from the stored message"
    );
}

fn as_set(v: &Value) -> BTreeSet<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Collects `count` group_message ids from a socket (after its `ready`). If the server closes it
/// with 1013 (too far behind), reconnects with `since` = the last id seen and carries on.
async fn collect_ids(addr: SocketAddr, token: &str, mut ws: Ws, count: usize) -> (Vec<i64>, usize) {
    let mut seen: Vec<i64> = Vec::new();
    let mut reconnects = 0;
    let mut replaying = false;
    'outer: while seen.len() < count {
        loop {
            let item = tokio::time::timeout(TIMEOUT, ws.stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out after {} of {count} messages", seen.len()));
            let frame: Value = match item {
                Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1013 => {
                    reconnects += 1;
                    assert!(reconnects <= 50, "closed 1013 more than 50 times");
                    let since = seen.last().copied().unwrap_or(0);
                    ws = Ws::connect(addr, token, Some(since)).await;
                    replaying = true;
                    continue 'outer;
                }
                Some(Ok(Message::Close(f))) => {
                    panic!("closed with {f:?} after {} messages", seen.len())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error after {} messages: {e}", seen.len()),
                None => panic!(
                    "socket ended without a close frame after {} messages",
                    seen.len()
                ),
            };
            match frame["type"].as_str() {
                Some("group_message") => {
                    seen.push(frame["id"].as_i64().unwrap());
                    if seen.len() >= count && !replaying {
                        break 'outer;
                    }
                }
                Some("ready") => {
                    replaying = false;
                    if seen.len() >= count {
                        break 'outer;
                    }
                }
                Some("presence" | "presence_batch" | "ack") => {}
                _ => panic!("unexpected frame {frame}"),
            }
        }
    }
    (seen, reconnects)
}
