//! `chatserver copy --from --to`: a classroom's SQLite file into PostgreSQL and back, with
//! everything a user sees kept (accounts and their passwords and sessions, conversations,
//! messages with edits, reactions and attachments, search). Needs PostgreSQL, as the cluster
//! tests do (skipped with a message when it is missing, unless CHATSERVER_REQUIRE_CLUSTER).

use serde_json::{json, Value};

use crate::helpers::*;

fn postgres_here() -> bool {
    if on_postgres() {
        eprintln!("skipped in the PostgreSQL run: the copy tests run in the default one");
        return false;
    }
    if Postgres::installed() {
        return true;
    }
    assert!(
        std::env::var_os("CHATSERVER_REQUIRE_CLUSTER").is_none(),
        "CHATSERVER_REQUIRE_CLUSTER is set but PostgreSQL is not installed"
    );
    eprintln!("skipped: PostgreSQL is not installed");
    false
}

/// What a member sees of a conversation: every message as the API gives it.
async fn seen(api: &Api, who: &Session, group: i64) -> Vec<Value> {
    api.full_history(who, group).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_copied_to_postgresql_and_back_keeps_everything() {
    if !postgres_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("class.db");
    let mut lite = ServerProcess::spawn(&file).await;
    let ava = lite.ava().await;
    let mike = lite.mike().await;
    let group = lite.create_group(&ava, "Copied", &[mike.id]).await;
    let first = lite.send(&ava, group, "héllo wörld, first").await;
    let first_id = first["id"].as_i64().unwrap();
    lite.edit(&ava, first_id, "héllo wörld, edited").await;
    assert_eq!(lite.react(&mike, first_id, "👍", true).await.0, 204);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let upload = lite.upload(&ava, "notes.bin", bytes.clone()).await;
    let attachment = upload["id"].as_i64().unwrap();
    let (status, _) = lite
        .send_body(
            &ava,
            group,
            &json!({"content": "see attached", "attachment_ids": [attachment]}),
        )
        .await;
    assert_eq!(status, 201);
    // More than a page of a PostgreSQL read (64 rows), so the way back reads several.
    for i in 0..70 {
        lite.send(&mike, group, &format!("line {i}")).await;
    }
    let before = seen(&lite, &mike, group).await;
    lite.sigterm();
    lite.wait_exit(TIMEOUT).await;

    // Into PostgreSQL.
    let pg = tokio::task::spawn_blocking(|| Postgres::get().new_database())
        .await
        .unwrap();
    let out = cli(
        &["copy", "--from", file.to_str().unwrap(), "--to", &pg],
        None,
    )
    .await;
    out.assert_success();
    assert!(out.stdout.contains("72 messages"), "{}", out.stdout);
    let again = cli(
        &["copy", "--from", file.to_str().unwrap(), "--to", &pg],
        None,
    )
    .await;
    again.assert_one_line_failure();
    assert!(
        again.stderr.contains("already has accounts"),
        "{}",
        again.stderr
    );

    let on_pg = ServerProcess::spawn(std::path::Path::new(&pg)).await;
    // The signing secret and the sessions came along: Mike's token still works.
    let (status, me) = on_pg.get("/v1/me", mike.auth()).await;
    assert_eq!((status, me["id"].as_i64()), (200, Some(mike.id)));
    let ava_pg = on_pg.ava().await;
    assert_eq!(seen(&on_pg, &mike, group).await, before);
    let fetched = on_pg
        .fetch(&format!("/v1/attachments/{attachment}"), mike.auth(), &[])
        .await;
    assert_eq!((fetched.status, fetched.body.len()), (200, bytes.len()));
    assert!(fetched.body == bytes, "the attachment's bytes are the same");
    assert_eq!(on_pg.search_ids(&mike, "worlds").await, Vec::<i64>::new());
    assert_eq!(on_pg.search_ids(&mike, "wörld").await, vec![first_id]);
    let later = on_pg.send(&ava_pg, group, "written on PostgreSQL").await;
    assert!(later["id"].as_i64().unwrap() > before.last().unwrap()["id"].as_i64().unwrap());
    let on_pg_seen = seen(&on_pg, &mike, group).await;
    on_pg.sigterm();
    drop(on_pg);

    // And back into a new SQLite file.
    let back = dir.path().join("back.db");
    let out = cli(
        &["copy", "--from", &pg, "--to", back.to_str().unwrap()],
        None,
    )
    .await;
    out.assert_success();
    let lite_again = ServerProcess::spawn(&back).await;
    assert_eq!(seen(&lite_again, &mike, group).await, on_pg_seen);
    assert_eq!(lite_again.search_ids(&mike, "wörld").await, vec![first_id]);
    let (status, _) = lite_again.get("/v1/me", mike.auth()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_refuses_a_missing_source_and_the_same_database_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let to = dir.path().join("to.db");
    let out = cli(
        &[
            "copy",
            "--from",
            missing.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ],
        None,
    )
    .await;
    out.assert_one_line_failure();
    assert!(!to.exists(), "nothing was made");
    let same = to.to_str().unwrap();
    let out = cli(&["copy", "--from", same, "--to", same], None).await;
    out.assert_one_line_failure();
}
