//! Running it like a product: metrics, CORS, and logs that never leak secrets.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The value of one sample line `name{labels} value` (labels as written, in order).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

async fn metrics_text(api: &Api) -> String {
    let resp = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_messages_sockets_and_deliveries() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let mut socket = server.ws_ready(&mike).await;
    for i in 0..3 {
        server.send(&ava, GENERAL, &format!("m{i}")).await;
        socket.expect_type("group_message").await;
    }
    let (status, _) = server.get("/v1/groups/999", ava.auth()).await;
    assert_eq!(status, 404);

    let text = metrics_text(&server).await;
    let sent = r#"chatserver_http_requests_total{route="/v1/messages/group/{id}",method="POST",status="201"}"#;
    assert_eq!(sample(&text, sent), Some(3.0), "{text}");
    let missing =
        r#"chatserver_http_requests_total{route="/v1/groups/{id}",method="GET",status="404"}"#;
    assert_eq!(sample(&text, missing), Some(1.0), "{text}");
    let latency = r#"chatserver_http_request_duration_seconds_count{route="/v1/messages/group/{id}",method="POST"}"#;
    assert_eq!(sample(&text, latency), Some(3.0), "{text}");
    assert_eq!(
        sample(&text, "chatserver_messages_stored_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "chatserver_websocket_open"),
        Some(1.0),
        "{text}"
    );
    // ready + 3 messages at least (presence may add more).
    let delivered = sample(&text, "chatserver_websocket_deliveries_total").unwrap();
    assert!(delivered >= 4.0, "{text}");
    assert!(sample(&text, "chatserver_db_pool_wait_seconds_count").unwrap() > 0.0);
    assert!(sample(&text, "chatserver_db_write_batch_size_count").unwrap() >= 3.0);
    for name in [
        "chatserver_websocket_lagged_total",
        "chatserver_websocket_slow_closed_total",
    ] {
        assert_eq!(sample(&text, name), Some(0.0), "{name}: {text}");
    }
    // Unknown paths are counted without inventing a route per path.
    server.get("/no/such/path/12345", None).await;
    let text = metrics_text(&server).await;
    assert!(!text.contains("12345"), "raw paths must not become labels");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    // Nor a method per invented method: each would be a series kept for the process's life.
    for invented in ["BREW1", "BREW2"] {
        let method = Method::from_bytes(invented.as_bytes()).unwrap();
        let resp = server
            .http
            .request(method, server.url("/v1/groups"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405);
    }
    let text = metrics_text(&server).await;
    assert!(
        !text.contains("BREW"),
        "invented methods must not become labels"
    );
    let other = r#"chatserver_http_requests_total{route="unmatched",method="other",status="405"}"#;
    assert_eq!(sample(&text, other), Some(2.0), "{text}");

    socket.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_their_own_listener() {
    let server =
        TestServer::start_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics_addr = server.server().metrics_addr().expect("metrics listener");
    assert_ne!(metrics_addr, server.addr);
    let (status, body) = server.get("/metrics", None).await;
    assert_error(&(status, body), 404, "not_found");
    let text = metrics_text(&Api::new(metrics_addr)).await;
    assert!(text.contains("chatserver_http_requests"), "{text}");
}

const ALLOWED: &str = "http://classroom.example:3000";

async fn with_origin(api: &Api, method: Method, path: &str, origin: &str) -> reqwest::Response {
    api.http
        .request(method, api.url(path))
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_for_allowed_origins_only() {
    let server = TestServer::start_with(|c| c.cors_origins = vec![ALLOWED.to_string()]).await;
    let preflight = server
        .http
        .request(Method::OPTIONS, server.url("/v1/groups"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let allowed_headers = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));

    let ok = with_origin(&server, Method::GET, "/healthz", ALLOWED).await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], ALLOWED);

    for origin in ["http://evil.example", "null"] {
        let refused = with_origin(&server, Method::GET, "/healthz", origin).await;
        assert_eq!(refused.status().as_u16(), 403, "{origin}");
        assert!(refused
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{body}");
    }
    // The server's own origin (a page it served) and curl (no Origin) are always fine.
    let own = format!("http://{}", server.addr);
    let same = with_origin(&server, Method::GET, "/healthz", &own).await;
    assert_eq!(same.status().as_u16(), 200);
    assert!(same.headers().get("access-control-allow-origin").is_none());
    assert_eq!(server.get("/healthz", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_flags_other_origins_are_refused_including_the_socket() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let refused = with_origin(&server, Method::GET, "/v1/me", "http://elsewhere.example").await;
    assert_eq!(refused.status().as_u16(), 403);

    let url = ws_url(server.addr, Some(&ava.token), None);
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_static("http://elsewhere.example"),
    );
    let (status, body) = ws_refused(request).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    // From the server's own page the socket opens.
    let mut request = url.as_str().into_client_request().unwrap();
    let own = format!("http://{}", server.addr);
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(&own).unwrap());
    let mut ws = Ws::connect_request(request).await;
    ws.expect_type("ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_routes_and_never_passwords_tokens_or_message_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let server = ServerProcess::spawn_with(&db, &[]).await;
    let secret_password = "Sup3r-secret-pass!";
    let user = server
        .register("logcheck", "logcheck@example.com", secret_password)
        .await;
    let session = server.session("logcheck", secret_password).await;
    let ava = server.ava().await;
    let group = server
        .create_group(&ava, "Logs", &[user["id"].as_i64().unwrap()])
        .await;
    let body = "a private sentence that must stay out of logs";
    server.send(&session, group, body).await;
    let mut ws = server.ws_connect(&session.token, None).await;
    ws.expect_type("ready").await;
    ws.stream
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"type": "send", "group_id": group, "content": body, "client_id": "x"})
                .to_string(),
        ))
        .await
        .unwrap();
    while let Some(Ok(frame)) = ws.stream.next().await {
        if frame.to_text().unwrap_or("").contains("\"ack\"") {
            break;
        }
    }
    // The request lines are there, by route (the socket's is logged after the send's) …
    let log = server
        .stderr_with(&[r#"route="/v1/messages/group/{id}""#, r#"route="/ws""#])
        .await;
    assert!(
        log.contains(r#"route="/v1/messages/group/{id}""#),
        "no request line for the send:\n{log}"
    );
    // … and nothing secret is.
    for secret in [secret_password, &session.token, &session.refresh, body] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}
