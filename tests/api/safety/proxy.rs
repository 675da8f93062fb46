//! Behind a reverse proxy (`--trusted-proxy`): the client's address is the one the proxy
//! appended to X-Forwarded-For, for the per-address limits and the loopback-only rules; from
//! anyone else the header means nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// `POST /v1/users/login` as if forwarded for `forwarded` (None: no header).
async fn login_via(api: &Api, forwarded: Option<&str>, user: &str, password: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(Method::POST, api.url("/v1/users/login"))
        .json(&json!({"username": user, "password": password}));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let resp = req.send().await.expect("login request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_clients() {
    let server = TestServer::start_configured(|c| {
        c.net.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.login_limit = chatserver::limits::Limit::parse("2/600").unwrap();
    })
    .await;
    // The seeded accounts' known password works from this machine only: through the proxy,
    // a student is not this machine, and neither is a request that names nobody.
    for forwarded in [Some("192.168.1.23"), None, Some("not an address")] {
        let (status, body) = login_via(&server, forwarded, "Ava", SEED_PASSWORD).await;
        assert_eq!(status, 403, "forwarded for {forwarded:?}: {body}");
        assert_eq!(body["code"], "default_password");
    }
    // The limits count per forwarded address: two failures lock the account for that one,
    // whatever the client put before the proxy's entry, and not for a classmate.
    server.register("Zoe", "zoe@example.test", PASSWORD).await;
    for _ in 0..2 {
        let (status, _) = login_via(&server, Some("10.0.0.1"), "Zoe", "wrong").await;
        assert_eq!(status, 401);
    }
    let spoofed = "10.0.0.2, 10.0.0.1";
    let (status, _) = login_via(&server, Some(spoofed), "Zoe", PASSWORD).await;
    assert_eq!(
        status, 429,
        "locked for 10.0.0.1, the address the proxy saw"
    );
    let (status, _) = login_via(&server, Some("10.0.0.2"), "Zoe", PASSWORD).await;
    assert_eq!(status, 200, "a classmate's address is not locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_proxy_x_forwarded_for_is_ignored() {
    let server = TestServer::start().await;
    let (status, body) = login_via(&server, Some("192.168.1.23"), "Ava", SEED_PASSWORD).await;
    assert_eq!(
        status, 200,
        "this machine, whatever the header says: {body}"
    );
}
