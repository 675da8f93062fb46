//! What every answer must look like: the contract's error body, timestamps, message objects.

use std::collections::HashSet;

use serde_json::Value;

/// Percent-encodes `s` for a query string (everything but unreserved characters).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fails if `v` has an `email` key anywhere or contains any of `emails` as text.
#[track_caller]
pub fn assert_no_email(v: &Value, emails: &[&str], what: &str) {
    fn walk(v: &Value, what: &str) {
        match v {
            Value::Object(map) => {
                assert!(!map.contains_key("email"), "{what} leaks an email: {v}");
                map.values().for_each(|x| walk(x, what));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(x, what)),
            _ => {}
        }
    }
    walk(v, what);
    let text = v.to_string().to_lowercase();
    for e in emails {
        assert!(
            !text.contains(&e.to_lowercase()),
            "{what} contains the email {e}: {v}"
        );
    }
}

/// The contract's error shape: exactly `{"error": "<sentence>", "code": "<code>"}` with `status`.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(
        (*got_status, body["code"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {got_status} {body}"
    );
    let obj = body.as_object().expect("error body is an object");
    let keys: HashSet<&str> = obj.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from(["error", "code"]),
        "error body has exactly error+code: {body}"
    );
    let sentence = body["error"].as_str().expect("error is a string");
    assert!(
        !sentence.trim().is_empty(),
        "error sentence is empty: {body}"
    );
    for leak in [
        "panicked",
        "SQLITE",
        "sqlite",
        "SELECT ",
        "INSERT ",
        "backtrace",
    ] {
        assert!(
            !sentence.contains(leak),
            "error leaks internals ({leak}): {body}"
        );
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-21T09:30:00.123Z`.
#[track_caller]
pub fn assert_timestamp(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "timestamp {s:?} is not RFC 3339 UTC with milliseconds"
    );
}

/// The fields of a message object, as the contract lists them.
pub const MESSAGE_FIELDS: [&str; 9] = [
    "id",
    "group_id",
    "sender_id",
    "sender_username",
    "content",
    "timestamp",
    "edited_at",
    "deleted",
    "client_id",
];

/// A message object as the contract describes it (HTTP body or the fields of `group_message`).
#[track_caller]
pub fn assert_message_shape(m: &Value) {
    for key in MESSAGE_FIELDS {
        assert!(m.get(key).is_some(), "message lacks `{key}`: {m}");
    }
    assert!(m["id"].is_i64(), "id is an integer: {m}");
    assert!(m["group_id"].is_i64(), "group_id is an integer: {m}");
    assert!(m["sender_id"].is_i64(), "sender_id is an integer: {m}");
    assert!(
        m["sender_username"].is_string(),
        "sender_username is a string: {m}"
    );
    assert!(m["content"].is_string(), "content is a string: {m}");
    assert!(m["deleted"].is_boolean(), "deleted is a bool: {m}");
    assert!(
        m["client_id"].is_string() || m["client_id"].is_null(),
        "client_id: {m}"
    );
    assert_timestamp(&m["timestamp"]);
}

pub fn ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["id"].as_i64().expect("message id"))
        .collect()
}

#[track_caller]
pub fn assert_strictly_ascending(ids: &[i64], what: &str) {
    for w in ids.windows(2) {
        assert!(
            w[0] < w[1],
            "{what}: ids not strictly ascending: {} then {}",
            w[0],
            w[1]
        );
    }
}
