//! The door: a request naming a host this server does not answer to is refused (against DNS
//! rebinding), and every answer carries the headers that keep pages safe in a browser.

use crate::helpers::*;

async fn with_host(
    server: &TestServer,
    request_line: &str,
    host: &str,
    extra: &str,
) -> (u16, String, String) {
    let mut tcp = tcp_from("127.0.0.2", server.addr).await;
    let request = format!("{request_line}\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    raw_http(&mut tcp, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_421_for_pages_the_api_and_the_socket() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let port = server.addr.port();
    let evil = format!("evil.example:{port}");
    for line in [
        "GET /healthz HTTP/1.1",
        "GET / HTTP/1.1",
        "GET /v1/me HTTP/1.1",
    ] {
        let (status, _, body) = with_host(&server, line, &evil, "").await;
        assert_eq!(status, 421, "{line}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "invalid_host", "{body}");
    }
    // A page from the rebinding site logging in, with its own Origin: refused at the door.
    let login = format!(
        "Origin: http://{evil}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        r#"{"username":"Ava","password":"password"}"#.len()
    );
    let mut tcp = tcp_from("127.0.0.2", server.addr).await;
    let request = format!(
        "POST /v1/users/login HTTP/1.1\r\nHost: {evil}\r\n{login}Connection: close\r\n\r\n{}",
        r#"{"username":"Ava","password":"password"}"#
    );
    let (status, _, body) = raw_http(&mut tcp, &request).await;
    assert_eq!(status, 421, "{body}");
    let upgrade = format!(
        "Origin: http://{evil}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    let line = format!("GET /ws?token={} HTTP/1.1", ava.token);
    let mut tcp = tcp_from("127.0.0.2", server.addr).await;
    let request = format!("{line}\r\nHost: {evil}\r\n{upgrade}\r\n");
    let (status, _, _) = raw_http(&mut tcp, &request).await;
    assert_eq!(status, 421, "the socket upgrade from a foreign host");

    // Addresses and localhost are fine.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".into(),
    ] {
        let (status, _, body) = with_host(&server, "GET /healthz HTTP/1.1", &host, "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_given_with_public_host_are_answered() {
    let server = TestServer::start_with(|cfg| {
        cfg.net.public_hosts = vec!["chat.school.example".into()];
    })
    .await;
    let (status, _, body) = with_host(
        &server,
        "GET /healthz HTTP/1.1",
        "Chat.School.Example:8080",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = with_host(&server, "GET /healthz HTTP/1.1", "school.example", "").await;
    assert_eq!(status, 421);
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_api_answers_carry_the_security_headers() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    for page in ["GET / HTTP/1.1", "GET /docs HTTP/1.1"] {
        let (status, head, _) = with_host(&server, page, "127.0.0.1", "").await;
        assert_eq!(status, 200);
        let csp = header(&head, "content-security-policy")
            .unwrap_or_else(|| panic!("{page}: no CSP\n{head}"));
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(header(&head, "x-frame-options"), Some("DENY"), "{head}");
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{head}"
        );
        assert_eq!(
            header(&head, "referrer-policy"),
            Some("no-referrer"),
            "{head}"
        );
    }
    let auth = format!("Authorization: Bearer {}\r\n", ava.token);
    for (line, extra) in [
        ("GET /v1/me HTTP/1.1", auth.as_str()),
        ("GET /v1/nothing HTTP/1.1", ""),
    ] {
        let (_, head, _) = with_host(&server, line, "127.0.0.1", extra).await;
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{line}\n{head}"
        );
        assert_eq!(
            header(&head, "cache-control"),
            Some("no-store"),
            "{line}\n{head}"
        );
        assert!(
            header(&head, "content-security-policy").is_none(),
            "JSON needs no CSP"
        );
    }
    // The client's files are revalidated, not stored away.
    let (_, head, _) = with_host(&server, "GET /app.js HTTP/1.1", "127.0.0.1", "").await;
    assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{head}");
}
