//! `chatserver group …`: groups made and filled from the command line, seen live by a server
//! running on the same file, and every refusal one line that changes nothing.

use std::path::Path;

use serde_json::json;

use crate::helpers::*;

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// `chatserver --db DB ARGS…`.
async fn on(db: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["--db", db];
    all.extend_from_slice(args);
    cli(&all, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_made_on_the_command_line_reach_a_running_server_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    let db = text(&path);
    let server = ServerProcess::spawn(&path).await;
    let teacher = server.new_user("teacher").await;
    let alice = server.new_user("alice").await;
    let bob = server.new_user("bob").await;
    let mut alice_ws = server.ws_ready(&alice).await;

    let out = on(
        &db,
        &[
            "group",
            "create",
            "Class 4B",
            "--owner",
            "teacher",
            "--members",
            "alice",
        ],
    )
    .await;
    out.assert_success();
    assert!(out.stdout.contains("created group Class 4B"), "{out:?}");
    // Alice's open socket hears of it (the server follows the command line within a second)
    // and she can post at once.
    let added = alice_ws.next_of_type("member_added").await;
    let group = added["group_id"].as_i64().expect("group_id");
    assert_eq!(added["user_id"], alice.id, "{added}");
    assert_eq!(
        server.send(&alice, group, "hello class").await["content"],
        "hello class"
    );
    let listed = server.conversation(&teacher, group).await;
    assert_eq!(listed["role"], "owner", "{listed}");

    // Adding by name, as an admin; the one already in is left alone.
    let out = on(
        &db,
        &[
            "group", "add", "Class 4B", "bob", "alice", "--role", "admin",
        ],
    )
    .await;
    out.assert_success();
    assert!(
        out.stdout.contains("added 1 user(s)") && out.stdout.contains("1 already"),
        "{out:?}"
    );
    let out = on(&db, &["group", "members", &group.to_string()]).await;
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "USERNAME\tROLE",
            "teacher\towner",
            "alice\tmember",
            "bob\tadmin"
        ],
        "{out:?}"
    );
    let bob_sees = server.conversation(&bob, group).await;
    assert_eq!(bob_sees["role"], "admin", "{bob_sees}");

    // Removing: Alice's socket is told, and her next send is refused.
    on(&db, &["group", "remove", "Class 4B", "alice"])
        .await
        .assert_success();
    let removed = alice_ws.next_of_type("member_removed").await;
    assert_eq!(
        (removed["group_id"].as_i64(), &removed["user_id"]),
        (Some(group), &json!(alice.id))
    );
    let (status, _) = server
        .post_json(
            &format!("/v1/messages/group/{group}"),
            alice.auth(),
            &json!({"content": "x"}),
        )
        .await;
    assert_eq!(status, 403);

    let out = on(&db, &["group", "list"]).await;
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "ID\tNAME\tOWNER\tPOSTING\tMEMBERS", "{out:?}");
    assert!(
        lines.contains(&format!("{group}\tClass 4B\tteacher\teveryone\t2").as_str()),
        "{out:?}"
    );
    assert!(lines.contains(&"1\tGeneral\tAva\teveryone\t2"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_refuse_what_is_wrong_in_one_line_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    let db = text(&path);
    cli(&["migrate", "--db", &db], None).await.assert_success();
    cli(&["seed", "--db", &db], None).await.assert_success();
    on(&db, &["group", "create", "Twins"])
        .await
        .assert_success();
    on(&db, &["group", "create", "Twins", "--members", "Ava"])
        .await
        .assert_success();
    let before = on(&db, &["group", "list"]).await.stdout;

    for (args, says) in [
        (
            vec!["group", "create", "Lab", "--owner", "nobody"],
            "no user named nobody",
        ),
        (
            vec!["group", "create", "Lab", "--members", "Ava,ghost"],
            "no user named ghost",
        ),
        (vec!["group", "create", "   "], "name"),
        (
            vec!["group", "add", "Twins", "Mike"],
            "2 groups are named \"Twins\"",
        ),
        (
            vec!["group", "add", "Nowhere", "Mike"],
            "no group named \"Nowhere\"",
        ),
        (vec!["group", "add", "999", "Mike"], "no group with id 999"),
        (
            vec!["group", "add", "General", "Mike", "ghost"],
            "no user named ghost",
        ),
        (
            vec!["group", "add", "General", "Mike", "--role", "owner"],
            "owner",
        ),
        (vec!["group", "remove", "General", "Ava"], "owns General"),
        (
            vec!["group", "remove", "General", "ghost"],
            "no user named ghost",
        ),
        (vec!["group", "members", "Nowhere"], "no group named"),
    ] {
        let out = on(&db, &args).await;
        out.assert_one_line_failure();
        assert!(
            out.stderr.contains(says),
            "{args:?} should say {says:?}: {out:?}"
        );
    }
    // `group add` without users names what is missing.
    let out = on(&db, &["group", "add", "General"]).await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("<USERNAME>"), "{out:?}");
    assert_eq!(
        on(&db, &["group", "list"]).await.stdout,
        before,
        "a refusal changed the groups"
    );
    let members = on(&db, &["group", "members", "General"]).await.stdout;
    assert_eq!(
        members.lines().count(),
        3,
        "General lost or gained someone: {members}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_never_create_a_database() {
    if sqlite_only("a missing database file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let db = text(&missing);
    let csv = dir.path().join("class.csv");
    std::fs::write(&csv, "username,email\nstu,stu@example.test\n").unwrap();
    let backup = text(&dir.path().join("copy.db"));
    for args in [
        vec![
            "user",
            "add",
            "alice",
            "alice@example.test",
            "--password",
            "long-enough-1",
        ],
        vec!["user", "list"],
        vec!["user", "passwd", "Ava", "--password", "long-enough-1"],
        vec!["user", "delete", "Ava"],
        vec!["user", "import", csv.to_str().unwrap()],
        vec!["token", "Ava"],
        vec!["seed"],
        vec!["backup", &backup],
        vec!["group", "list"],
        vec!["group", "create", "Lab"],
    ] {
        let out = on(&db, &args).await;
        out.assert_one_line_failure();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(&db) && out.stderr.contains("--db"),
            "{args:?} should name the path and --db: {out:?}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "class.csv")
            .collect();
        assert!(left.is_empty(), "{args:?} left files behind: {left:?}");
    }
    // `migrate` is the command that makes one.
    on(&db, &["migrate"]).await.assert_success();
    assert!(missing.exists());
}
