use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_400_invalid_json() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    let raw_bodies: Vec<(&str, &[u8])> = vec![
        ("not JSON", b"{not json"),
        ("empty body", b""),
        ("array", b"[]"),
        ("wrong types", br#"{"username": 123, "email": "x@example.test", "password": "12345678"}"#),
        ("missing field", br#"{"username": "dave", "password": "12345678"}"#),
        (
            "unknown field",
            br#"{"username": "dave", "email": "d@example.test", "password": "12345678", "admin": true}"#,
        ),
    ];
    for (what, body) in raw_bodies {
        let (status, text) = server
            .raw(
                Method::POST,
                "/v1/users/register",
                None,
                Some(body.to_vec()),
            )
            .await;
        let got = (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        );
        assert!(got.0 == 400, "{what}: {got:?}");
        assert_error(&got, 400, "invalid_json");
    }
    // None of those created dave.
    let got = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "dave", "password": "12345678"}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");

    // Protected routes parse the same way.
    let (status, text) = server
        .raw(
            Method::POST,
            "/v1/groups",
            ava.auth(),
            Some(br#"{"name": 5}"#.to_vec()),
        )
        .await;
    assert_error(
        &(status, serde_json::from_str(&text).unwrap()),
        400,
        "invalid_json",
    );
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &json!({"content": "hi", "colour": "red"}),
        )
        .await;
    assert_error(&got, 400, "invalid_json");

    // JSON without a Content-Type header is still JSON (curl -d).
    let resp = server
        .http
        .post(server.url("/v1/users/login"))
        .body(json!({"username": "Ava", "password": SEED_PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let limit = 64 * 1024;

    let big =
        json!({"username": "big", "email": "big@example.test", "password": "p".repeat(limit)});
    assert!(serde_json::to_vec(&big).unwrap().len() > limit);
    assert_error(
        &server.post_json("/v1/users/register", None, &big).await,
        413,
        "payload_too_large",
    );

    let big_message = json!({"content": "m".repeat(limit + 10)});
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &big_message,
        )
        .await;
    assert_error(&got, 413, "payload_too_large");
    let (history, _) = server.history(&ava, GENERAL, "").await;
    assert!(history.is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405_as_json() {
    let server = TestServer::start().await;
    let ava = server.ava().await;

    for path in ["/nope", "/v1/nope", "/v1/users/login/extra"] {
        assert_error(&server.get(path, None).await, 404, "not_found");
        assert_error(&server.get(path, ava.auth()).await, 404, "not_found");
    }

    let got = server.request(Method::PUT, "/healthz", None, None).await;
    assert_error(&got, 405, "method_not_allowed");
    let got = server
        .request(Method::DELETE, "/v1/auth/refresh", None, None)
        .await;
    assert_error(&got, 405, "method_not_allowed");
}
