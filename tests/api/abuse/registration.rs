use crate::helpers::*;
use chatserver::config::Registration;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Closed registration
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_refuses_signups_and_the_cli_still_adds_users() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("closed.db");
    let db = db_path.to_str().unwrap().to_string();
    let server = ServerProcess::spawn_with(&db_path, &["--registration", "closed"]).await;

    let got = server
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "walkin", "email": "walkin@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");
    // Even a well-formed request from a logged-in user is refused.
    let ava = server.ava().await;
    let got = server
        .post_json(
            "/v1/users/register",
            ava.auth(),
            &json!({"username": "walkin2", "email": "walkin2@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");

    // The teacher adds an account with the CLI while the server runs; it logs in over HTTP.
    cli(
        &[
            "user",
            "add",
            "pupil",
            "pupil@example.test",
            "--password",
            PASSWORD,
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    let pupil = server.session("pupil", PASSWORD).await;
    let (status, me) = server.get("/v1/me", pupil.auth()).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("pupil")),
        "{me}"
    );
    assert!(
        !server.stderr_text().contains("panicked"),
        "{}",
        server.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_through_config() {
    let server = TestServer::start_with(|cfg| cfg.registration = Registration::Closed).await;
    let got = server
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "walkin", "email": "walkin@example.test", "password": PASSWORD}),
        )
        .await;
    assert_error(&got, 403, "forbidden");
    // Seeded accounts are unaffected.
    server.ava().await;
}
