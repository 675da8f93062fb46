//! Durability at the edges: a full disk answers 503 `unavailable` (never 500), loses nothing
//! that was acknowledged, and the server recovers when space comes back; and the contract's
//! limits hold exactly at their edges.
//!
//! The disk-full test mounts a 2 MiB tmpfs (root, as here and in CI). Where mounting is not
//! allowed it is skipped with a message, unless CHATSERVER_REQUIRE_MOUNT is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Disk full
// ---------------------------------------------------------------------------------------------

/// A small tmpfs, unmounted on drop (also when the test fails). Declare it before anything that
/// keeps files open on it (the server), so those are dropped first.
struct Tmpfs {
    dir: PathBuf,
    _holder: tempfile::TempDir,
}

impl Tmpfs {
    /// None (after saying why) when mounting is not possible and not required.
    fn mount(size: &str) -> Option<Tmpfs> {
        let holder = tempfile::tempdir().expect("temp dir");
        let dir = holder.path().to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        let failure = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => Some(Tmpfs {
                dir,
                _holder: holder,
            }),
            Some(why) if std::env::var_os("CHATSERVER_REQUIRE_MOUNT").is_some() => {
                panic!("mount -t tmpfs failed and CHATSERVER_REQUIRE_MOUNT is set: {why}")
            }
            Some(why) => {
                eprintln!(
                    "SKIPPED: the disk-full test needs `mount -t tmpfs` (root); it failed: {why}. \
                     Set CHATSERVER_REQUIRE_MOUNT=1 to make this a failure."
                );
                None
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there: detach it now, it goes when released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` until the filesystem is full (ENOSPC), down to single bytes; returns the size.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create filler");
    let mut written = 0u64;
    for chunk in [64 * 1024, 4096, 512, 1] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match file.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_unavailable_and_the_server_recovers() {
    if sqlite_only("a full disk under the SQLite file (a tmpfs mount)") {
        return;
    }
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let db = fs.path("chat.db");
    let filler = fs.path("filler");
    let mut server = ServerProcess::spawn(&db).await;
    let ava = server.ava().await;
    let mut ws = server.ws_ready(&ava).await;

    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(server.send(&ava, GENERAL, &format!("before {i}")).await);
    }

    let filled = fill(&filler);
    eprintln!("disk full: filler of {filled} bytes on a 2 MiB tmpfs");

    // Writes fail with the contract's 503 (a little slack in SQLite's files may take a few).
    let mut refused = None;
    for i in 0..200 {
        let content = format!("while full {i}");
        let got = server
            .post_json(
                &format!("/v1/messages/group/{GENERAL}"),
                ava.auth(),
                &json!({"content": content}),
            )
            .await;
        match got.0 {
            201 => acked.push(got.1),
            _ => {
                refused = Some((content, got));
                break;
            }
        }
    }
    let (lost_content, got) = refused.expect("200 messages were stored on a full disk");
    assert_error(&got, 503, "unavailable");
    eprintln!(
        "disk full: {} message(s) stored after filling, then 503 unavailable",
        acked.len() - 5
    );
    // Other writes too, over HTTP and over the socket; reads still work.
    let got = server
        .post_json(
            "/v1/groups",
            ava.auth(),
            &json!({"name": "Created on a full disk"}),
        )
        .await;
    assert_error(&got, 503, "unavailable");
    ws.send_json(&json!({"type": "send", "group_id": GENERAL, "content": "ws while full", "client_id": "full-1"}))
        .await;
    let answer = ws.next_of_type("error").await;
    assert_eq!(
        (answer["code"].as_str(), answer["client_id"].as_str()),
        (Some("unavailable"), Some("full-1")),
        "{answer}"
    );
    let (history, _) = server.history(&ava, GENERAL, "limit=200").await;
    assert_eq!(ids(&history), ids(&acked), "history while the disk is full");
    let (status, _) = server.get("/healthz", None).await;
    assert!(
        status == 200 || status == 503,
        "healthz on a full disk: {status}"
    );

    // Space comes back: writes work again at once.
    std::fs::remove_file(&filler).expect("remove filler");
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &json!({"content": "after recovery"}),
        )
        .await;
    if got.0 != 201 {
        // Not at once: say how long it takes, if it recovers at all.
        let started = Instant::now();
        let mut last = got.clone();
        while started.elapsed() < Duration::from_secs(10) && last.0 != 201 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = server
                .post_json(
                    &format!("/v1/messages/group/{GENERAL}"),
                    ava.auth(),
                    &json!({"content": "after recovery (retry)"}),
                )
                .await;
        }
        panic!(
            "after the filler was removed the first write answered {} {}; after 10 s of retries: \
             {} {}\nserver log:\n{}",
            got.0,
            got.1,
            last.0,
            last.1,
            server.stderr_text()
        );
    }
    acked.push(got.1);
    ws.send_json(&json!({"type": "send", "group_id": GENERAL, "content": "ws after", "client_id": "after-1"}))
        .await;
    let ack = ws.next_of_type("ack").await;
    assert_eq!(ack["client_id"], "after-1", "{ack}");
    acked.push(json!({"id": ack["id"]}));

    let history = server.full_history(&ava, GENERAL).await;
    assert_eq!(
        ids(&history),
        ids(&acked),
        "every acknowledged message, nothing else"
    );
    assert!(
        !history
            .iter()
            .any(|m| m["content"] == lost_content.as_str()),
        "the refused message was stored"
    );
    assert_eq!(integrity_check(&db), "ok", "integrity while running");

    // And on disk: a kill -9 now, then a restart, keeps every acknowledged message.
    server.kill9();
    assert_eq!(integrity_check(&db), "ok", "integrity after kill -9");
    drop(ws);
    let server = ServerProcess::spawn(&db).await;
    let ava = server.ava().await;
    let history = server.full_history(&ava, GENERAL).await;
    assert_eq!(ids(&history), ids(&acked), "after kill -9 and restart");
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "{log}");
    drop(server);
    drop(fs);
}

// ---------------------------------------------------------------------------------------------
// Limits at their edges
// ---------------------------------------------------------------------------------------------

/// (what, method, path, body, expected status, expected code for errors)
type EdgeCase = (
    &'static str,
    Method,
    String,
    Option<Value>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_exactly_at_their_edges() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let post = format!("/v1/messages/group/{GENERAL}");
    let history = format!("/v1/messages/group/{GENERAL}");
    let u = |s: &str, n: usize| s.repeat(n);
    let register = |name: String, password: String| json!({"username": name, "email": format!("{}@example.test", name.to_lowercase()), "password": password});

    let cases: Vec<EdgeCase> = vec![
        (
            "content of 4000 characters",
            Method::POST,
            post.clone(),
            Some(json!({"content": u("a", 4000)})),
            201,
            "",
        ),
        (
            "content of 4000 four-byte characters",
            Method::POST,
            post.clone(),
            Some(json!({"content": u("🙂", 4000)})),
            201,
            "",
        ),
        (
            "content of 4001 characters",
            Method::POST,
            post.clone(),
            Some(json!({"content": u("a", 4001)})),
            400,
            "invalid_content",
        ),
        (
            "content padded to 4001 but 4000 after trimming",
            Method::POST,
            post.clone(),
            Some(json!({"content": format!(" {} ", u("a", 4000))})),
            201,
            "",
        ),
        (
            "content of white space only",
            Method::POST,
            post.clone(),
            Some(json!({"content": " \n\t "})),
            400,
            "invalid_content",
        ),
        (
            "empty content",
            Method::POST,
            post.clone(),
            Some(json!({"content": ""})),
            400,
            "invalid_content",
        ),
        (
            "client_id of 64",
            Method::POST,
            post.clone(),
            Some(json!({"content": "c", "client_id": u("c", 64)})),
            201,
            "",
        ),
        (
            "client_id of 65",
            Method::POST,
            post.clone(),
            Some(json!({"content": "c", "client_id": u("c", 65)})),
            400,
            "invalid_client_id",
        ),
        (
            "page size 1",
            Method::GET,
            format!("{history}?limit=1"),
            None,
            200,
            "",
        ),
        (
            "page size 200",
            Method::GET,
            format!("{history}?limit=200"),
            None,
            200,
            "",
        ),
        (
            "page size 0",
            Method::GET,
            format!("{history}?limit=0"),
            None,
            400,
            "invalid_limit",
        ),
        (
            "page size 201",
            Method::GET,
            format!("{history}?limit=201"),
            None,
            400,
            "invalid_limit",
        ),
        (
            "page size -1",
            Method::GET,
            format!("{history}?limit=-1"),
            None,
            400,
            "invalid_limit",
        ),
        (
            "page size 2^63",
            Method::GET,
            format!("{history}?limit=9223372036854775808"),
            None,
            400,
            "invalid_limit",
        ),
        (
            "search page 201",
            Method::GET,
            "/v1/messages/search?q=a&limit=201".into(),
            None,
            400,
            "invalid_limit",
        ),
        (
            "user list page 201",
            Method::GET,
            "/v1/users?limit=201".into(),
            None,
            400,
            "invalid_limit",
        ),
        (
            "group name of 100",
            Method::POST,
            "/v1/groups".into(),
            Some(json!({"name": u("g", 100)})),
            201,
            "",
        ),
        (
            "group name of 101",
            Method::POST,
            "/v1/groups".into(),
            Some(json!({"name": u("g", 101)})),
            400,
            "invalid_name",
        ),
        (
            "group name of spaces",
            Method::POST,
            "/v1/groups".into(),
            Some(json!({"name": "   "})),
            400,
            "invalid_name",
        ),
        (
            "username of 3",
            Method::POST,
            "/v1/users/register".into(),
            Some(register(u("b", 3), PASSWORD.into())),
            201,
            "",
        ),
        (
            "username of 32",
            Method::POST,
            "/v1/users/register".into(),
            Some(register(u("c", 32), PASSWORD.into())),
            201,
            "",
        ),
        (
            "username of 2",
            Method::POST,
            "/v1/users/register".into(),
            Some(register(u("d", 2), PASSWORD.into())),
            400,
            "invalid_username",
        ),
        (
            "username of 33",
            Method::POST,
            "/v1/users/register".into(),
            Some(register(u("e", 33), PASSWORD.into())),
            400,
            "invalid_username",
        ),
        (
            "username with a space",
            Method::POST,
            "/v1/users/register".into(),
            Some(register("with space".into(), PASSWORD.into())),
            400,
            "invalid_username",
        ),
        (
            "password of 8",
            Method::POST,
            "/v1/users/register".into(),
            Some(register("pw8".into(), u("p", 8))),
            201,
            "",
        ),
        (
            "password of 128",
            Method::POST,
            "/v1/users/register".into(),
            Some(register("pw128".into(), u("p", 128))),
            201,
            "",
        ),
        (
            "password of 7",
            Method::POST,
            "/v1/users/register".into(),
            Some(register("pw7".into(), u("p", 7))),
            400,
            "invalid_password",
        ),
        (
            "password of 129",
            Method::POST,
            "/v1/users/register".into(),
            Some(register("pw129".into(), u("p", 129))),
            400,
            "invalid_password",
        ),
    ];
    let mut failures = Vec::new();
    for (what, method, path, body, status, code) in &cases {
        let got = server
            .request(method.clone(), path, ava.auth(), body.as_ref())
            .await;
        assert_ne!(got.0, 500, "{what}: 500 {}", got.1);
        if got.0 != *status || (!code.is_empty() && got.1["code"] != *code) {
            failures.push(format!(
                "{what}: expected {status} {code}, got {} {}",
                got.0, got.1
            ));
        }
    }
    assert!(failures.is_empty(), "limits:\n{}", failures.join("\n"));
    eprintln!("limits: {} edge cases", cases.len());
}

/// Reads an HTTP response head and body from a raw connection (the server closes or sends
/// Content-Length); returns the status.
async fn raw_status(tcp: &mut tokio::net::TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut chunk))
            .await
            .expect("no answer: the server waited for the body")
            .expect("read");
        assert!(n > 0, "closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head}"))
}

/// 413 comes before the body is buffered: a huge declared length is answered without sending
/// any of it, and a chunked body is cut off once it passes the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_refused_before_they_are_read() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let path = format!("/v1/messages/group/{GENERAL}");

    // 100 MB declared, nothing sent: the answer comes anyway.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
        server.addr, ava.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(raw_status(&mut tcp).await, 413, "huge Content-Length");

    // Chunked, with no length: refused once past the limit (64 KiB), not after 2 MiB.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr, ava.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 16 * 1024];
    let mut sent = 0;
    // Keep sending (ignoring write errors once the server has answered) up to 2 MiB.
    let writer = async {
        while sent < 2 * 1024 * 1024 {
            let frame = [
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece.clone(),
                b"\r\n".to_vec(),
            ]
            .concat();
            if tcp.write_all(&frame).await.is_err() {
                break;
            }
            sent += piece.len();
        }
    };
    let _ = tokio::time::timeout(TIMEOUT, writer).await;
    assert_eq!(
        raw_status(&mut tcp).await,
        413,
        "chunked body over the limit"
    );

    // Exactly at the limit is not too large (it is then judged on its content).
    let limit = 64 * 1024;
    let prefix = r#"{"content":""#;
    let suffix = r#""}"#;
    let body = format!(
        "{prefix}{}{suffix}",
        "a".repeat(limit - prefix.len() - suffix.len())
    );
    assert_eq!(body.len(), limit);
    let got = server
        .raw(Method::POST, &path, ava.auth(), Some(body.into_bytes()))
        .await;
    assert_eq!(got.0, 400, "a body of exactly 64 KiB: {}", got.1);
    let one_more = format!(
        "{prefix}{}{suffix}",
        "a".repeat(limit + 1 - prefix.len() - suffix.len())
    );
    let got = server
        .raw(Method::POST, &path, ava.auth(), Some(one_more.into_bytes()))
        .await;
    assert_eq!(got.0, 413, "a body of 64 KiB + 1: {}", got.1);
}
