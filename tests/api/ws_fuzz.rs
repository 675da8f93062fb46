//! A bounded, seeded random-frame fuzz of the WebSocket against the real binary: random bytes
//! as text and binary, random JSON, mutated valid frames, huge numbers, deep nesting, wrong
//! types, unicode, empty frames, oversize frames. Every frame that is not a well-formed client
//! frame must get an `error` frame (`invalid_json`) and leave the socket open; well-formed ones
//! may get anything but a close; an oversize frame closes with 1009. Afterwards the server still
//! answers `/healthz` and ping→pong, still delivers, and never panicked.
//!
//! CHATSERVER_FUZZ_SEED and CHATSERVER_FUZZ_CASES override the seed and the number of frames;
//! a failure prints the seed and the case to replay it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::helpers::*;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const DEFAULT_SEED: u64 = 0x5eed_c0ff_ee15_600d;
const DEFAULT_CASES: usize = 2000;
/// The server's default WebSocket message limit.
const WS_LIMIT: usize = 64 * 1024;

/// xorshift64*: small, seeded, good enough to pick cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const WEIRD_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\u{feff}hi",
    "héllo wörld",
    "日本語のテキスト",
    "🙂🙃🧪👩‍👩‍👧‍👦",
    "\u{202e}reversed\u{202c}",
    "zero\u{200b}width",
    "line\nbreak\r\ttab",
    "\"quotes\" and \\backslashes\\",
    "<script>alert(1)</script>",
    "'; DROP TABLE messages; --",
    "NULL",
    "%s%n%x",
    "\u{7f}\u{1b}[31mred",
    "a\u{301}\u{301}\u{301}\u{301}",
    "𝕳𝖊𝖑𝖑𝖔",
];

const HUGE_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1.0",
    "1e3",
    "0.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e308",
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "4.9e-324",
];

/// A random JSON value, at most `depth` deep.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 5 } else { 7 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => {
            serde_json::from_str(rng.pick::<&str>(HUGE_NUMBERS)).unwrap_or(json!(rng.next() as i64))
        }
        3 => json!(rng.pick(WEIRD_STRINGS)),
        4 => json!(rng.pick(&["send", "typing", "read", "ping", "SEND", "pong", "ack", ""])),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(5) {
                let key = rng.pick(&[
                    "type",
                    "group_id",
                    "content",
                    "client_id",
                    "message_id",
                    "x",
                    "",
                    "🙂",
                ]);
                m.insert(key.to_string(), random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// A well-formed client frame aimed at `groups` (members' groups, others', missing ones).
fn valid_frame(rng: &mut Rng, groups: &[i64], n: usize) -> Value {
    let group = *rng.pick(groups);
    match rng.below(4) {
        0 => json!({"type": "ping"}),
        1 => json!({"type": "typing", "group_id": group}),
        2 => json!({"type": "read", "group_id": group, "message_id": rng.below(50) as i64}),
        _ => {
            let content = if rng.chance(3) {
                rng.pick(WEIRD_STRINGS).to_string()
            } else {
                format!("fuzz {n} {}", rng.pick(WEIRD_STRINGS))
            };
            let mut f = json!({"type": "send", "group_id": group, "content": content});
            if !rng.chance(4) {
                f["client_id"] = json!(format!("fz{n}"));
            }
            f
        }
    }
}

/// 1–3 mutations of a valid frame: fields dropped, retyped, renamed, numbers made huge.
fn mutate(rng: &mut Rng, mut frame: Value) -> Value {
    for _ in 0..1 + rng.below(3) {
        let obj = frame.as_object_mut().unwrap();
        let keys: Vec<String> = obj.keys().cloned().collect();
        let key = rng.pick(&keys).clone();
        match rng.below(6) {
            0 => {
                obj.remove(&key);
            }
            1 => {
                obj.insert(key, random_value(rng, 2));
            }
            2 => {
                let n: Value =
                    serde_json::from_str(rng.pick::<&str>(HUGE_NUMBERS)).unwrap_or(json!(0));
                obj.insert(key, n);
            }
            3 => {
                let v = obj.remove(&key).unwrap();
                obj.insert(key.to_uppercase(), v);
            }
            4 => {
                obj.insert(
                    rng.pick(&["extra", "type", "client_id", "group_id"])
                        .to_string(),
                    random_value(rng, 1),
                );
            }
            _ => {
                let v = obj.get(&key).cloned().unwrap();
                obj.insert(key, json!(v.to_string()));
            }
        }
        if obj.is_empty() {
            break;
        }
    }
    frame
}

/// A text with `depth` nested arrays, optionally inside a ping frame's extra field.
fn deep(depth: usize, in_frame: bool) -> String {
    let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    if in_frame {
        format!(r#"{{"type":"ping","x":{nest}}}"#)
    } else {
        nest
    }
}

/// A frame as text with a huge (or malformed) number spliced in where an id goes.
fn huge_number_text(rng: &mut Rng) -> String {
    let n = rng.pick(HUGE_NUMBERS);
    let bad = rng.pick(&["NaN", "Infinity", "-", "01", "1.", ".5", "0x10", "1e", "+1"]);
    let n = if rng.chance(3) { *bad } else { *n };
    match rng.below(3) {
        0 => format!(r#"{{"type":"send","group_id":{n},"content":"n","client_id":"hn"}}"#),
        1 => format!(r#"{{"type":"read","group_id":1,"message_id":{n}}}"#),
        _ => format!(r#"{{"type":"typing","group_id":{n}}}"#),
    }
}

/// Text-level corruptions of a valid frame: truncation, a byte flipped, junk appended.
fn corrupt_text(rng: &mut Rng, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    match rng.below(4) {
        0 => chars[..rng.below(chars.len())].iter().collect(),
        1 => {
            let mut c = chars.clone();
            let i = rng.below(c.len());
            c[i] = *rng.pick(&['{', '}', '"', ',', ':', '\\', 'x', '\u{0}']);
            c.into_iter().collect()
        }
        2 => format!("{text}{}", rng.pick(&["}", ",", " x", "\u{0}", "{}"])),
        _ => format!(r#"{{"type":"send","type":"ping"{}"#, &text[1..]),
    }
}

enum Case {
    Text(String),
    Binary(Vec<u8>),
}

/// What the server must do with a case.
#[derive(Debug, PartialEq)]
enum Expect {
    /// An `error` frame with code `invalid_json` (and the frame's string `client_id`, if any).
    Error(Option<String>),
    /// A `pong`.
    Pong,
    /// A well-formed frame: any answer (or none), but the socket stays open.
    Anything,
    /// A close with 1009.
    TooBig,
}

/// The oracle: the contract's client frames, judged independently of the server's code.
fn expect(case: &Case) -> Expect {
    let text = match case {
        Case::Binary(_) => return Expect::Error(None),
        Case::Text(t) if t.len() > WS_LIMIT => return Expect::TooBig,
        Case::Text(t) => t,
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Expect::Error(None);
    };
    let client_id = v
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(obj) = v.as_object() else {
        return Expect::Error(client_id);
    };
    let int = |k: &str| obj.get(k).is_some_and(Value::is_i64);
    let well_formed = match obj.get("type").and_then(Value::as_str) {
        Some("ping") => return Expect::Pong,
        Some("send") => {
            int("group_id")
                && obj.get("content").is_some_and(Value::is_string)
                && obj
                    .get("client_id")
                    .is_none_or(|c| c.is_string() || c.is_null())
        }
        Some("typing") => int("group_id"),
        Some("read") => int("group_id") && int("message_id"),
        _ => false,
    };
    if well_formed {
        Expect::Anything
    } else {
        Expect::Error(client_id)
    }
}

fn generate(rng: &mut Rng, groups: &[i64], n: usize) -> (&'static str, Case) {
    match rng.below(100) {
        0..=9 => {
            let bytes = rng.bytes(200);
            (
                "random text",
                Case::Text(String::from_utf8_lossy(&bytes).into_owned()),
            )
        }
        10..=17 => ("random binary", Case::Binary(rng.bytes(200))),
        18..=32 => ("random JSON", Case::Text(random_value(rng, 4).to_string())),
        33..=57 => {
            let frame = valid_frame(rng, groups, n);
            let v = mutate(rng, frame);
            ("mutated frame", Case::Text(v.to_string()))
        }
        58..=67 => {
            let t = valid_frame(rng, groups, n).to_string();
            ("corrupted text", Case::Text(corrupt_text(rng, &t)))
        }
        68..=77 => (
            "valid frame",
            Case::Text(valid_frame(rng, groups, n).to_string()),
        ),
        78..=83 => ("huge number", Case::Text(huge_number_text(rng))),
        84..=88 => {
            let depth = *rng.pick(&[1, 10, 100, 126, 127, 128, 129, 200, 1000, 20_000]);
            ("deep nesting", Case::Text(deep(depth, rng.chance(2))))
        }
        89..=93 => {
            let t = rng.pick(&[
                "",
                " ",
                "\n",
                "null",
                "{}",
                "[]",
                "\"\"",
                "0",
                "true",
                "{\"type\":null}",
            ]);
            ("empty or trivial", Case::Text(t.to_string()))
        }
        94..=98 => {
            // Long but under the limit: content too long, or a long client_id.
            let long = "l".repeat(WS_LIMIT - 200);
            let f = if rng.chance(2) {
                json!({"type": "send", "group_id": groups[0], "content": long, "client_id": format!("long{n}")})
            } else {
                json!({"type": "send", "group_id": groups[0], "content": "x", "client_id": long})
            };
            ("long frame", Case::Text(f.to_string()))
        }
        _ => {
            let big = json!({"type": "send", "group_id": groups[0], "content": "o".repeat(WS_LIMIT + rng.below(4096))});
            ("oversize", Case::Text(big.to_string()))
        }
    }
}

/// One fuzzed socket: whose it is, and how it answered.
struct Fuzzed {
    who: Session,
    ws: Ws,
    sentinels: usize,
}

/// Sends the case, then a sentinel (an unknown frame type with a unique client_id, which must
/// come back as an error with it), and returns every frame between them.
async fn exchange(sock: &mut Fuzzed, case: Case) -> Result<Vec<Value>, Closed> {
    let msg = match case {
        Case::Text(t) => Message::text(t),
        Case::Binary(b) => Message::binary(b),
    };
    // The server may close on an oversize frame before reading all of it.
    let _ = futures_util::SinkExt::send(&mut sock.ws.stream, msg).await;
    sock.sentinels += 1;
    let tag = format!("sentinel-{}", sock.sentinels);
    let sentinel = json!({"type": "sentinel", "client_id": tag}).to_string();
    let _ = futures_util::SinkExt::send(&mut sock.ws.stream, Message::text(sentinel)).await;
    let mut frames = Vec::new();
    loop {
        let item =
            tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(&mut sock.ws.stream))
                .await
                .expect("no answer to the sentinel within the timeout");
        match item {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("server sent non-JSON text ({e}): {t}"));
                if v["type"] == "error" && v["client_id"] == tag.as_str() {
                    assert_eq!(v["code"], "invalid_json", "sentinel answer: {v}");
                    return Ok(frames);
                }
                frames.push(v);
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(Closed::NoCode, |f| Closed::Code(u16::from(f.code))))
            }
            Some(Ok(Message::Binary(b))) => panic!("server sent a binary frame: {b:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Closed::Abrupt(e.to_string())),
            None => return Err(Closed::Abrupt("stream ended".into())),
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_get_error_frames_or_valid_answers_and_never_break_the_server() {
    let seed: u64 = env_or("CHATSERVER_FUZZ_SEED", DEFAULT_SEED);
    let cases: usize = env_or("CHATSERVER_FUZZ_CASES", DEFAULT_CASES);
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("fuzz.db")).await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let own = server.create_group(&ava, "Fuzz", &[]).await;
    // Groups the fuzz aims at: General (Ava, Mike), Ava's own, and a missing one.
    let groups = [GENERAL, own, 999_999];

    let mut sockets = Vec::new();
    for who in [&ava, &ava, &mike, &zed] {
        let ws = server.ws_ready(who).await;
        sockets.push(Fuzzed {
            who: who.clone(),
            ws,
            sentinels: 0,
        });
    }

    let mut rng = Rng::new(seed);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_expect: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut errors, mut closes_1009, mut answered_valid) = (0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    for n in 0..cases {
        let (kind, case) = generate(&mut rng, &groups, n);
        *by_kind.entry(kind).or_default() += 1;
        let want = expect(&case);
        *by_expect
            .entry(match want {
                Expect::Error(_) => "error",
                Expect::Pong => "pong",
                Expect::Anything => "well-formed",
                Expect::TooBig => "oversize",
            })
            .or_default() += 1;
        let shown = match &case {
            Case::Text(t) => format!("text {:?}", t.chars().take(300).collect::<String>()),
            Case::Binary(b) => format!("binary {:?}", &b[..b.len().min(64)]),
        };
        let ctx = format!("case {n} ({kind}, seed {seed:#x}): {shown}");
        let i = rng.below(sockets.len());
        let sock = &mut sockets[i];
        let result = exchange(sock, case).await;
        // Every deviation is collected, so one run reports them all (and all the figures).
        let problem = match (&want, result) {
            (Expect::TooBig, Err(Closed::Code(1009))) => {
                closes_1009 += 1;
                sock.ws = server.ws_ready(&sock.who).await;
                sock.sentinels = 0;
                None
            }
            (Expect::TooBig, other) => Some(format!("expected close 1009, got {other:?}")),
            (_, Err(how)) => {
                sock.ws = server.ws_ready(&sock.who).await;
                sock.sentinels = 0;
                Some(format!("the socket closed: {how:?}"))
            }
            (Expect::Error(client_id), Ok(frames)) => {
                errors += 1;
                let answered = frames.iter().any(|f| {
                    f["type"] == "error"
                        && f["code"] == "invalid_json"
                        && f.get("client_id").and_then(Value::as_str) == client_id.as_deref()
                });
                (!answered).then(|| format!("no invalid_json error frame; got {frames:?}"))
            }
            (Expect::Pong, Ok(frames)) => (!frames.iter().any(|f| f["type"] == "pong"))
                .then(|| format!("no pong; got {frames:?}")),
            (Expect::Anything, Ok(frames)) => {
                if frames
                    .iter()
                    .any(|f| f["type"] == "ack" || f["type"] == "error")
                {
                    answered_valid += 1;
                }
                None
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{ctx}: {p}"));
        }
    }

    // Afterwards: the server is healthy, every socket answers, delivery works, no panic.
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!(status, 200, "healthz after the fuzz: {body}");
    for sock in &mut sockets {
        // Late answers to the fuzz's sends may still be queued ahead of the pong.
        sock.ws.send_json(&json!({"type": "ping"})).await;
        sock.ws.next_of_type("pong").await;
    }
    let mut fresh = server.ws_ready(&mike).await;
    let sent = server.send(&ava, GENERAL, "after the fuzz").await;
    // Sends of the fuzz still being written when the socket opened arrive first, in order.
    let mut got = fresh.next_of_type("group_message").await;
    while got["id"].as_i64() < sent["id"].as_i64() {
        got = fresh.next_of_type("group_message").await;
    }
    assert_eq!(got["id"], sent["id"], "delivery after the fuzz");
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");

    eprintln!(
        "ws fuzz: {cases} frames (seed {seed:#x}) over {} sockets; by kind {by_kind:?}; \
         expected {by_expect:?}; {errors} frames checked for an error frame, {answered_valid} well-formed \
         frames answered (ack/error) before the sentinel, {closes_1009} closes with 1009; \
         {} deviations",
        sockets.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} frames were not answered as the contract says (first 20):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A JSON array is not a frame, even one serde could read as the fields in order (the HTTP
/// bodies refuse arrays for the same reason): it gets `invalid_json` and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_are_not_frames() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mut ws = server.ws_ready(&ava).await;
    for (text, client_id) in [
        (r#"["ping"]"#.to_string(), None),
        (
            format!(r#"["send", {GENERAL}, "sent as an array", "arr-1"]"#),
            None,
        ),
        (format!(r#"["typing", {GENERAL}]"#), None),
        (format!(r#"["read", {GENERAL}, 1]"#), None),
    ] {
        ws.send(Message::text(text.clone())).await;
        let answer = ws.next_json().await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("invalid_json")),
            "{text} was answered {answer}"
        );
        assert_eq!(answer.get("client_id").and_then(Value::as_str), client_id);
    }
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert!(
        history.iter().all(|m| m["content"] != "sent as an array"),
        "an array frame stored a message: {history:?}"
    );
}

/// Reads a raw connection until the server ends it; returns the frames it sent.
async fn until_end(tcp: &mut tokio::net::TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("the server kept a broken connection open");
    parse_server_frames(&bytes)
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    if masked {
        let key = [0x12u8, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Violations of the WebSocket protocol itself end that connection (a close frame with a
/// protocol code, or at least the connection), and nothing else: the server stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_end_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(&dir.path().join("proto.db")).await;
    let ava = server.ava().await;
    let addr: SocketAddr = server.addr;
    let mut witness = server.ws_ready(&ava).await;

    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "invalid UTF-8 in a text frame",
            client_frame(0x81, &[0x7b, 0xff, 0xfe, 0x7d], true),
            &[1007],
        ),
        (
            "an unmasked client frame",
            client_frame(0x81, br#"{"type":"ping"}"#, false),
            &[1002],
        ),
        ("a reserved opcode", client_frame(0x83, b"x", true), &[1002]),
        (
            "reserved bits set",
            client_frame(0xc1, br#"{"type":"ping"}"#, true),
            &[1002],
        ),
        (
            "a continuation without a start",
            client_frame(0x80, b"x", true),
            &[1002],
        ),
        ("a fragmented ping", client_frame(0x09, b"", true), &[1002]),
        (
            "a control frame over 125 bytes",
            client_frame(0x89, &[0u8; 200], true),
            &[1002],
        ),
        (
            "a close with an invalid code",
            client_frame(0x88, &[0x03, 0xe7], true),
            &[1002],
        ),
    ];
    let mut report = Vec::new();
    for (what, bytes, codes) in &cases {
        let mut tcp = raw_ws(addr, &ava.token, None).await;
        tcp.write_all(bytes).await.unwrap();
        let frames = until_end(&mut tcp).await;
        let close = frames.iter().find(|(op, _)| *op == 0x8).map(|(_, p)| {
            if p.len() >= 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                1005
            }
        });
        report.push(format!(
            "{what}: {}",
            close.map_or("dropped without a close frame".to_string(), |c| format!(
                "close {c}"
            ))
        ));
        if let Some(code) = close {
            assert!(
                codes.contains(&code) || code == 1002,
                "{what}: closed with {code}, expected one of {codes:?}"
            );
        }
        witness.ping_pong().await;
    }
    // A fragmented but valid message is one frame to the server: it is answered.
    let mut tcp = raw_ws(addr, &ava.token, None).await;
    let (a, b) = br#"{"type":"pi"#.split_at(5);
    let mut bytes = client_frame(0x01, a, true);
    bytes.extend(client_frame(0x00, b, true));
    bytes.extend(client_frame(0x80, br#"ng"}"#, true));
    tcp.write_all(&bytes).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !parse_server_frames(&got)
        .iter()
        .any(|(op, p)| *op == 0x1 && p.windows(4).any(|w| w == b"pong"))
    {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut chunk))
            .await
            .expect("no pong to a fragmented ping frame")
            .expect("read");
        assert!(n > 0, "closed after a fragmented message");
        got.extend_from_slice(&chunk[..n]);
    }

    let (status, _) = server.get("/healthz", None).await;
    assert_eq!(status, 200);
    witness.ping_pong().await;
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    eprintln!("protocol violations:\n  {}", report.join("\n  "));
}
