//! A fresh database is migrated and seeded once; restarts keep data and the JWT secret.

use std::collections::BTreeSet;

use crate::helpers::*;
use serde_json::{json, Value};

async fn user_count(api: &Api, s: &Session) -> usize {
    let (status, users) = api.get("/v1/users?limit=200", s.auth()).await;
    assert_eq!(status, 200, "{users}");
    users.as_array().expect("users array").len()
}

fn member_ids(group: &Value) -> BTreeSet<i64> {
    group["members"]
        .as_array()
        .unwrap_or_else(|| panic!("group has a members array: {group}"))
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_database_seeds_ava_mike_and_general() {
    let server = TestServer::start().await;

    let ava = server.ava().await;
    let mike = server.mike().await;
    assert_ne!(ava.id, mike.id);

    // Both seeded users log in by email too.
    for (email, id) in [("ava@temp.com", ava.id), ("mike@temp.com", mike.id)] {
        let (status, body) = server
            .post_json(
                "/v1/users/login",
                None,
                &json!({"email": email, "password": SEED_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["id"], id);
        assert_eq!(body["user"]["email"], email);
    }

    let (status, general) = server
        .get(&format!("/v1/groups/{GENERAL}"), ava.auth())
        .await;
    assert_eq!(status, 200, "{general}");
    assert_eq!(general["id"], GENERAL);
    assert_eq!(general["name"], "General");
    assert_eq!(general["kind"], "group");
    assert_eq!(general["owner_id"], ava.id);
    assert_eq!(member_ids(&general), BTreeSet::from([ava.id, mike.id]));
    for m in general["members"].as_array().unwrap() {
        let expected_role = if m["id"] == ava.id { "owner" } else { "member" };
        assert_eq!(m["role"], expected_role, "{m}");
    }

    // Exactly the two seeded users exist.
    assert_eq!(user_count(&server, &ava).await, 2);
    let (_, groups) = server.get("/v1/groups", mike.auth()).await;
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["General"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_does_not_seed_again_and_keeps_changes() {
    let mut server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    // Change seeded rows: rename General, remove Mike; add a user.
    let (status, body) = server
        .patch(
            &format!("/v1/groups/{GENERAL}"),
            ava.auth(),
            &json!({"name": "Lobby"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .delete(
            &format!("/v1/groups/{GENERAL}/members/{}", mike.id),
            ava.auth(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let zed = server.new_user("zed").await;
    let users_before = user_count(&server, &zed).await;
    assert_eq!(users_before, 3);

    server.restart().await;

    let ava = server.ava().await;

    let (status, general) = server
        .get(&format!("/v1/groups/{GENERAL}"), ava.auth())
        .await;
    assert_eq!(status, 200, "{general}");
    assert_eq!(general["name"], "Lobby", "seed must not rename it back");
    assert_eq!(
        member_ids(&general),
        BTreeSet::from([ava.id]),
        "seed must not re-add Mike"
    );
    assert_eq!(user_count(&server, &ava).await, users_before);
    server.session("zed", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_seed_group_stays_deleted_after_restart() {
    let mut server = TestServer::start().await;
    let ava = server.ava().await;
    let (status, body) = server
        .delete(&format!("/v1/groups/{GENERAL}"), ava.auth())
        .await;
    assert_eq!(status, 204, "{body}");

    server.restart().await;

    let ava = server.ava().await;
    let got = server
        .get(&format!("/v1/groups/{GENERAL}"), ava.auth())
        .await;
    assert_error(&got, 404, "not_found");
    let (_, groups) = server.get("/v1/groups", ava.auth()).await;
    assert_eq!(groups, json!([]), "seeding ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart() {
    let mut server = TestServer::start_with(|cfg| cfg.tokens.jwt_secret = None).await;
    let ava = server.ava().await;
    let (status, _) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200);

    server.restart().await;

    let (status, me) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(
        status, 200,
        "a token issued before the restart must still work: {me}"
    );
    assert_eq!(me["id"], ava.id);
    let (status, body) = server
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": ava.refresh}),
        )
        .await;
    assert_eq!(status, 200, "refresh token survives the restart: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_seeding_the_database_stays_empty() {
    let server = TestServer::start_with(|cfg| cfg.no_seed = true).await;
    let got = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "Ava", "password": SEED_PASSWORD}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_ok_and_version() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let backend = if on_postgres() { "postgres" } else { "sqlite" };
    assert_eq!(
        (&body["backend"], &body["broker"]),
        (&json!(backend), &json!("none"))
    );
}

/// A PostgreSQL that is not there is one line on stderr naming why, and the password in the
/// URL is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_one_line_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://chat:hunter2@127.0.0.1:{port}/chat");
    let out = cli(&["serve", "--db", &url, "--addr", "127.0.0.1:0"], None).await;
    out.assert_one_line_failure();
    assert!(
        out.stderr.contains("cannot connect to PostgreSQL") && out.stderr.contains("refused"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"),
        "{out:?}"
    );
}
