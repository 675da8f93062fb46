//! Clients that are not on this machine, from a network namespace of the test's own: the
//! seeded accounts' known password, the login page's hint, and /metrics.

use serde_json::{json, Value};

use crate::helpers::*;

/// A server on the namespace's host-end address, and the namespace to reach it from.
async fn on_the_network() -> Option<(Netns, TestServer, String)> {
    let ns = Netns::create()?;
    let host = ns.host;
    let server = TestServer::start_configured(move |cfg| {
        cfg.addr = std::net::SocketAddr::new(host.into(), 0);
    })
    .await;
    let base = format!("http://{}", server.addr);
    Some((ns, server, base))
}

fn login_body(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_password_works_only_from_this_machine_until_it_is_changed() {
    let Some((ns, server, base)) = on_the_network().await else {
        return;
    };
    let login = format!("{base}/v1/users/login");
    let (status, body) = ns.curl(&["-d", &login_body("Ava", SEED_PASSWORD), &login]);
    assert_eq!(status, 403, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "default_password", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("chatserver user passwd Ava"),
        "{body}"
    );
    // By email too; a wrong password is the usual 401.
    let by_email = json!({"email": "ava@temp.com", "password": SEED_PASSWORD}).to_string();
    assert_eq!(ns.curl(&["-d", &by_email, &login]).0, 403);
    assert_eq!(
        ns.curl(&["-d", &login_body("Ava", "not it at all"), &login])
            .0,
        401
    );

    // Once the operator has changed it, the account may be used from anywhere.
    let db = server.db_path.to_str().unwrap().to_string();
    cli(
        &[
            "user",
            "passwd",
            "Ava",
            "--password",
            "a password of her own",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    let (status, body) = ns.curl(&["-d", &login_body("Ava", "a password of her own"), &login]);
    assert_eq!(status, 200, "{body}");
    // Mike still has the seed's password.
    assert_eq!(
        ns.curl(&["-d", &login_body("Mike", SEED_PASSWORD), &login])
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_hint_and_metrics_are_for_this_machine_only() {
    let Some((ns, server, base)) = on_the_network().await else {
        return;
    };
    let (status, body) = ns.curl(&[&format!("{base}/v1/welcome")]);
    assert_eq!(status, 200, "{body}");
    let welcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(welcome["demo_accounts"], json!([]), "{welcome}");
    let (status, body) = ns.curl(&[&format!("{base}/metrics")]);
    assert_eq!(status, 403, "{body}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_the_hint_names_the_seeded_accounts_while_they_exist() {
    let server = TestServer::start().await;
    let (status, welcome) = server.get("/v1/welcome", None).await;
    assert_eq!(status, 200);
    assert_eq!(welcome["registration"], "open");
    let names: Vec<&str> = welcome["demo_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ava", "Mike"], "{welcome}");
    let db = server.db_path.to_str().unwrap().to_string();
    cli(&["user", "delete", "Mike", "--db", &db], None)
        .await
        .assert_success();
    let (_, welcome) = server.get("/v1/welcome", None).await;
    assert_eq!(
        welcome["demo_accounts"],
        json!([{"username": "Ava", "password": SEED_PASSWORD}])
    );
    let (status, _) = server
        .raw(reqwest::Method::GET, "/metrics", None, None)
        .await;
    assert_eq!(status, 200, "loopback reads /metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_dual_stack_address_the_servers_own_machine_is_still_local() {
    let Some(ns) = Netns::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // [::] takes IPv4 clients too, as ::ffff:127.0.0.1; inside the namespace, so that the
    // wildcard address is the namespace's alone.
    let server = ServerProcess::spawn_under(
        &dir.path().join("chat.db"),
        "[::]:0",
        &[],
        Under::Namespace(ns.name()),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let (status, body) = ns.curl(&[&format!("{base}/v1/welcome")]);
    assert_eq!(status, 200, "{body}");
    let welcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(welcome["demo_accounts"][0]["username"], "Ava", "{welcome}");
    let login = format!("{base}/v1/users/login");
    let (status, body) = ns.curl(&["-d", &login_body("Ava", SEED_PASSWORD), &login]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = ns.curl(&[&format!("{base}/metrics")]);
    assert_eq!(status, 200, "{body}");
}
