//! The operator's mistakes, caught: files anyone could read, two servers on one database, a
//! database deleted under the server, a secret in the process list, an owner who leaves, and
//! values that would break the server.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_its_wal_and_backups_are_readable_by_their_owner_only() {
    if sqlite_only("the database's files and their permissions") {
        return;
    }
    let server = TestServer::start().await;
    let ava = server.ava().await;
    server.send(&ava, GENERAL, "make the WAL grow").await;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", server.db_path.display()));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let copy = server.db_path.with_file_name("copy.db");
    let db = server.db_path.to_str().unwrap().to_string();
    cli(&["backup", copy.to_str().unwrap(), "--db", &db], None)
        .await
        .assert_success();
    assert_eq!(mode(&copy), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_is_refused_and_the_cli_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let first = ServerProcess::spawn(&db).await;
    let path = db.to_str().unwrap();
    let out = cli(&["serve", "--db", path, "--addr", "127.0.0.1:0"], None).await;
    out.assert_one_line_failure();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("already served") && out.stderr.contains(&format!("pid {}", first.pid)),
        "the holder is named: {}",
        out.stderr
    );
    cli(&["user", "list", "--db", path], None)
        .await
        .assert_success();
    let (status, _) = first.get("/healthz", None).await;
    assert_eq!(status, 200, "the first server is untouched");
}

/// Deleted under the running server: within 5 s /healthz says so and writes are refused;
/// nothing pretends to be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_deleted_under_the_server_makes_it_unhealthy_and_refuse_writes() {
    if sqlite_only("a database file deleted under the server") {
        return;
    }
    let server = TestServer::start().await;
    let ava = server.ava().await;
    server.send(&ava, GENERAL, "before").await;
    std::fs::remove_file(&server.db_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = server.get("/healthz", None).await;
        if status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still {status} 5 s after the deletion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = server
        .post_json(
            &format!("/v1/messages/group/{GENERAL}"),
            ava.auth(),
            &json!({"content": "after"}),
        )
        .await;
    assert_error(&got, 503, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_replaced_under_the_server_is_noticed_too() {
    if sqlite_only("a database file replaced under the server") {
        return;
    }
    let server = TestServer::start().await;
    let other = server.db_path.with_file_name("other.db");
    std::fs::copy(&server.db_path, &other).unwrap();
    std::fs::rename(&other, &server.db_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.get("/healthz", None).await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "the replaced file went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_a_file_and_on_the_command_line_it_draws_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-secret-from-a-file-0123456789\n").unwrap();
    let db = dir.path().join("chat.db");
    let from_file =
        ServerProcess::spawn_with(&db, &["--jwt-secret-file", secret.to_str().unwrap()]).await;
    let ava = from_file.ava().await;
    let path = db.to_str().unwrap();
    // The CLI signs with the same file's secret, so its token is accepted.
    let out = cli(
        &[
            "token",
            "Ava",
            "--db",
            path,
            "--jwt-secret-file",
            secret.to_str().unwrap(),
        ],
        None,
    )
    .await;
    out.assert_success();
    let (status, _) = from_file.get("/v1/me", Some(out.stdout.trim())).await;
    assert_eq!(status, 200);
    assert!(!from_file.stderr_text().contains("process list"));
    drop((from_file, ava));

    let db2 = dir.path().join("chat2.db");
    let on_line =
        ServerProcess::spawn_with(&db2, &["--jwt-secret", "on-the-command-line-0123456789"]).await;
    assert!(
        on_line.stderr_text().contains("shows in the process list"),
        "{}",
        on_line.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_would_break_the_server_are_refused_on_the_command_line() {
    for (flag, value) in [
        ("--ws-ping-interval", "1e30"),
        ("--access-ttl", "18446744073709551615"),
        ("--refresh-ttl", "999999999999"),
        ("--idle-timeout", "0"),
        ("--login-limit", "10"),
    ] {
        let out = cli(&["serve", flag, value], None).await;
        out.assert_one_line_failure();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
    }
}

/// An owner's account is deleted: the oldest admin becomes owner, else the oldest member; a
/// group left with nobody goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_owners_groups_pass_to_an_admin_or_the_oldest_member() {
    let server = TestServer::start().await;
    let owner = server.new_user("leaver").await;
    let (early, late, admin) = (
        server.new_user("early").await,
        server.new_user("late").await,
        server.new_user("admin").await,
    );
    let with_admin = server
        .create_group(&owner, "With an admin", &[early.id])
        .await;
    server
        .add_member(&owner, with_admin, admin.id, Some("admin"))
        .await;
    let members_only = server
        .create_group(&owner, "Members only", &[early.id])
        .await;
    server.add_member(&owner, members_only, late.id, None).await;
    let alone = server.create_group(&owner, "Alone", &[]).await;

    let db = server.db_path.to_str().unwrap().to_string();
    cli(&["user", "delete", "leaver", "--db", &db], None)
        .await
        .assert_success();

    let (_, g) = server
        .get(&format!("/v1/groups/{with_admin}"), admin.auth())
        .await;
    assert_eq!(g["owner_id"], admin.id, "{g}");
    let (_, g) = server
        .get(&format!("/v1/groups/{members_only}"), early.auth())
        .await;
    assert_eq!(g["owner_id"], early.id, "{g}");
    let role = |g: &serde_json::Value, id: i64| {
        g["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(role(&g, early.id), "owner");
    let (status, _) = server
        .delete(&format!("/v1/groups/{members_only}"), early.auth())
        .await;
    assert_eq!(status, 204, "the new owner can delete the group");
    let got = server
        .get(&format!("/v1/groups/{alone}"), admin.auth())
        .await;
    assert_error(&got, 404, "not_found");
}
