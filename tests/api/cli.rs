//! The command line of the real binary.

use std::path::{Path, PathBuf};

use crate::helpers::*;
use serde_json::json;

fn db_in(dir: &tempfile::TempDir) -> (PathBuf, String) {
    let path = dir.path().join("chat.db");
    let text = path.to_str().unwrap().to_string();
    (path, text)
}

fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || "_.-@".contains(c)))
        .filter(|w| !w.is_empty())
        .collect()
}

fn history_rows(path: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT version, name FROM refinery_schema_history ORDER BY version")
        .expect("refinery_schema_history exists");
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_help() {
    let out = cli(&["--version"], None).await;
    out.assert_success();
    assert!(out.stdout.contains(env!("CARGO_PKG_VERSION")), "{out:?}");

    let out = cli(&["--help"], None).await;
    out.assert_success();
    let listed = words(&out.stdout);
    for sub in ["serve", "migrate", "seed", "user", "token", "backup"] {
        assert!(
            listed.contains(&sub),
            "--help does not list `{sub}`:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("--db") && out.stdout.contains("CHATSERVER_DB"),
        "{}",
        out.stdout
    );

    let out = cli(&["serve", "--help"], None).await;
    out.assert_success();
    for flag in ["--addr", "--jwt-secret", "--bcrypt-cost", "--no-seed"] {
        assert!(
            out.stdout.contains(flag),
            "serve --help lacks {flag}:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("CHATSERVER_ADDR"),
        "flags name their variables:\n{}",
        out.stdout
    );

    let out = cli(&["user", "--help"], None).await;
    out.assert_success();
    let listed = words(&out.stdout);
    for sub in ["add", "list", "passwd", "delete"] {
        assert!(
            listed.contains(&sub),
            "user --help does not list `{sub}`:\n{}",
            out.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_one_line_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (_, db) = db_in(&dir);
    let cases: Vec<Vec<&str>> = vec![
        vec!["--no-such-flag"],
        vec!["frobnicate"],
        vec!["serve", "--db", &db, "--addr", "not-an-address"],
        vec![
            "serve",
            "--db",
            &db,
            "--addr",
            "127.0.0.1:0",
            "--bcrypt-cost",
            "lots",
        ],
        vec!["user", "add"],
        vec!["user", "add", "--db", &db, "onlyname"],
        vec!["token"],
        vec!["backup"],
    ];
    for args in cases {
        let out = cli(&args, None).await;
        assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
        out.assert_one_line_failure();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_database_is_one_line_on_stderr() {
    if sqlite_only("unusable database paths") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing_dir = "/nonexistent-dir/x.db";
    let not_sqlite = dir.path().join("garbage.db");
    std::fs::write(&not_sqlite, vec![b'#'; 8192]).unwrap();
    let not_sqlite = not_sqlite.to_str().unwrap();

    for db in [missing_dir, not_sqlite] {
        for args in [
            vec!["migrate", "--db", db],
            vec!["user", "list", "--db", db],
            vec!["token", "Ava", "--db", db],
            vec![
                "serve",
                "--db",
                db,
                "--addr",
                "127.0.0.1:0",
                "--bcrypt-cost",
                "4",
            ],
        ] {
            let out = cli(&args, None).await;
            assert!(!out.status.success(), "{args:?} succeeded: {out:?}");
            out.assert_one_line_failure();
        }
    }
    assert!(!Path::new(missing_dir).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_once_and_prints_what_it_applied() {
    if sqlite_only("migrate creating a missing file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = db_in(&dir);

    let first = cli(&["migrate", "--db", &db], None).await;
    first.assert_success();
    assert!(
        !first.stdout.trim().is_empty(),
        "migrate prints what it applied: {first:?}"
    );
    let applied = history_rows(&path);
    assert!(!applied.is_empty(), "no migrations recorded");
    for (version, name) in &applied {
        assert!(
            first.stdout.contains(name) || first.stdout.contains(&format!("V{version}")),
            "migrate does not mention V{version} {name}: {first:?}"
        );
    }
    assert_eq!(integrity_check(&path), "ok");

    let second = cli(&["migrate", "--db", &db], None).await;
    second.assert_success();
    assert_eq!(
        history_rows(&path),
        applied,
        "the second run applied something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_subcommands_manage_accounts_that_log_in_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = db_in(&dir);
    cli(&["migrate", "--db", &db], None).await.assert_success();
    cli(&["seed", "--db", &db], None).await.assert_success();

    cli(
        &[
            "user",
            "add",
            "zed",
            "zed@example.test",
            "--password",
            "zed-password-1",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    cli(
        &["user", "add", "yan", "yan@example.test", "--db", &db],
        Some("yan-password-1\n"),
    )
    .await
    .assert_success();
    cli(
        &["user", "add", "xia", "xia@example.test", "--db", &db],
        Some("xia-password-1\n"),
    )
    .await
    .assert_success();

    // Refusals: taken name, taken email, invalid username, short password.
    for args in [
        vec![
            "user",
            "add",
            "ZED",
            "other@example.test",
            "--password",
            "long-enough-1",
        ],
        vec![
            "user",
            "add",
            "other",
            "ZED@example.test",
            "--password",
            "long-enough-1",
        ],
        vec![
            "user",
            "add",
            "ab",
            "ab@example.test",
            "--password",
            "long-enough-1",
        ],
        vec![
            "user",
            "add",
            "shorty",
            "shorty@example.test",
            "--password",
            "short",
        ],
    ] {
        let mut args = args;
        args.extend(["--db", db.as_str()]);
        cli(&args, None).await.assert_one_line_failure();
    }

    let list = cli(&["user", "list", "--db", &db], None).await;
    list.assert_success();
    let listed = words(&list.stdout);
    for name in ["Ava", "Mike", "zed", "yan", "xia"] {
        assert!(
            listed.contains(&name),
            "user list lacks {name}:\n{}",
            list.stdout
        );
    }
    for absent in ["ZED", "other", "ab", "shorty"] {
        assert!(
            !listed.contains(&absent),
            "a refused user was created: {absent}\n{}",
            list.stdout
        );
    }

    cli(
        &[
            "user",
            "passwd",
            "zed",
            "--password",
            "zed-password-2",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    cli(
        &["user", "passwd", "xia", "--db", &db],
        Some("xia-password-2\n"),
    )
    .await
    .assert_success();
    // A seeded user's new password must survive the server's start (no re-seeding).
    cli(
        &[
            "user",
            "passwd",
            "Ava",
            "--password",
            "ava-password-2",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    cli(&["user", "delete", "yan", "--db", &db], None)
        .await
        .assert_success();
    cli(&["user", "delete", "nobody", "--db", &db], None)
        .await
        .assert_one_line_failure();
    cli(
        &[
            "user",
            "passwd",
            "nobody",
            "--password",
            "whatever-1",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_one_line_failure();

    let list = cli(&["user", "list", "--db", &db], None).await;
    assert!(
        !words(&list.stdout).contains(&"yan"),
        "yan still listed:\n{}",
        list.stdout
    );

    let server = ServerProcess::spawn(&path).await;
    server.session("zed", "zed-password-2").await;
    server.session("xia", "xia-password-2").await;
    server.session("Ava", "ava-password-2").await;
    server.mike().await;
    for (user, password) in [
        ("zed", "zed-password-1"),
        ("yan", "yan-password-1"),
        ("Ava", SEED_PASSWORD),
    ] {
        let got = server
            .post_json(
                "/v1/users/login",
                None,
                &json!({"username": user, "password": password}),
            )
            .await;
        assert_error(&got, 401, "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_only_a_token_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = db_in(&dir);
    let server = ServerProcess::spawn(&path).await;
    let ava = server.ava().await;

    let out = cli(&["token", "Ava", "--db", &db], None).await;
    out.assert_success();
    let token = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "only the token: {:?}",
        out.stdout
    );
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");

    let (status, body) = server.get("/v1/test-auth", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], ava.id);

    let out = cli(&["token", "ava", "--db", &db], None).await;
    out.assert_success();
    let (status, _) = server.get("/v1/me", Some(out.stdout.trim())).await;
    assert_eq!(status, 200, "usernames are case-insensitive");

    cli(&["token", "nobody", "--db", &db], None)
        .await
        .assert_one_line_failure();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_writes_a_consistent_copy_while_the_server_runs() {
    if sqlite_only("backup writes a SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = db_in(&dir);
    let backup_path = dir.path().join("backup.db");
    let backup = backup_path.to_str().unwrap().to_string();
    let server = ServerProcess::spawn(&path).await;
    let ava = server.ava().await;
    server.new_user("bob").await;
    let before = server
        .send(&ava, GENERAL, "written before the backup")
        .await;

    // Keep writing while the backup runs.
    let api = server.api.clone();
    let writer_ava = ava.clone();
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            api.send(&writer_ava, GENERAL, &format!("during backup {i}"))
                .await;
        }
    });
    let out = cli(&["backup", &backup, "--db", &db], None).await;
    writer.await.unwrap();
    out.assert_success();
    assert_eq!(integrity_check(&backup_path), "ok");

    let conn = rusqlite::Connection::open(&backup_path).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tables > 0);
    drop(conn);

    let copy = ServerProcess::spawn(&backup_path).await;
    copy.session("bob", PASSWORD).await;
    let ava_copy = copy.ava().await;
    let (history, _) = copy.history(&ava_copy, GENERAL, "limit=200").await;
    assert_eq!(
        history.first(),
        Some(&before),
        "the backup has the earlier message"
    );
    assert_strictly_ascending(&ids(&history), "backup history");

    // A backup to an unusable place fails cleanly.
    cli(&["backup", "/nonexistent-dir/b.db", "--db", &db], None)
        .await
        .assert_one_line_failure();
}
