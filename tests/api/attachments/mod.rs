//! Attachments: files inside the database, sent with messages, fetched only by those who may,
//! typed by their bytes, and removed when nothing refers to them.

mod images;
mod lifecycle;
mod limits;
mod transfer;

use serde_json::{json, Value};

use crate::helpers::*;

/// Ava's upload of `bytes`, sent to General (where Mike is) in a message: (attachment, message).
async fn sent_to_general(api: &Api, ava: &Session, name: &str, bytes: Vec<u8>) -> (Value, Value) {
    let attachment = api.upload(ava, name, bytes).await;
    let body = json!({"content": "", "attachment_ids": [attachment["id"]]});
    let (status, message) = api.send_body(ava, 1, &body).await;
    assert_eq!(status, 201, "{message}");
    (attachment, message)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that compress to nothing and match no file type.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}
