//! `chatserver user import`: a class list as CSV, all or nothing, with the sheet of generated
//! passwords; the students log in with what the sheet says.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;

async fn fresh_db(dir: &Path) -> String {
    let db = dir.join("class.db").to_str().unwrap().to_string();
    cli(&["migrate", "--db", &db], None).await.assert_success();
    db
}

/// (username, display_name, password) rows of a sheet, header checked.
fn sheet_rows(text: &str) -> Vec<(String, String, String)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["username", "display_name", "password"]);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect()
}

fn user_count(db: &str) -> i64 {
    sql_at(std::path::Path::new(db), "SELECT count(*) FROM users")[0][0]
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_list_becomes_accounts_in_a_group_with_a_private_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_db(dir.path()).await;
    let list = dir.path().join("4b.csv");
    // Any column order, a byte-order mark, quoting, spaces and a blank line are all fine.
    std::fs::write(
        &list,
        "\u{feff}email,username,display_name,password\n\
         alice@example.test, alice ,\"Alice, A.\",\n\
         \n\
         bob@example.test,bob,,bobs-own-password\n\
         carla@example.test,carla,Carla,\n",
    )
    .unwrap();
    let sheet = dir.path().join("sheet.csv");
    let out = cli(
        &[
            "user",
            "import",
            list.to_str().unwrap(),
            "--group",
            "Class 4B",
            "--out",
            sheet.to_str().unwrap(),
            "--db",
            &db,
        ],
        None,
    )
    .await;
    out.assert_success();
    assert!(
        out.stdout.contains("imported 3 user(s) into Class 4B"),
        "{out:?}"
    );
    assert!(out.stdout.contains("2 generated"), "{out:?}");
    let mode = std::fs::metadata(&sheet).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the sheet holds passwords");
    let rows = sheet_rows(&std::fs::read_to_string(&sheet).unwrap());
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].0, "alice");
    assert_eq!(rows[0].1, "Alice, A.");
    assert_eq!(rows[1], ("bob".into(), "".into(), "(as given)".into()));
    let (alice_pw, carla_pw) = (rows[0].2.clone(), rows[2].2.clone());
    assert_ne!(alice_pw, carla_pw);
    for pw in [&alice_pw, &carla_pw] {
        assert!(pw.len() >= 10, "{pw}");
        assert!(
            pw.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{pw}"
        );
    }

    // The students log in with the sheet's passwords and find the group, with each other.
    let server = ServerProcess::spawn(Path::new(&db)).await;
    let alice = server.session("alice", &alice_pw).await;
    let bob = server.session("bob", "bobs-own-password").await;
    server.session("carla", &carla_pw).await;
    let groups = server.conversations(&alice).await;
    let class = groups
        .iter()
        .find(|g| g["name"] == "Class 4B")
        .expect("in Class 4B");
    let group = class["id"].as_i64().unwrap();
    assert_eq!(server.send(&bob, group, "hi").await["sender_id"], bob.id);
    let (_, me) = server.get("/v1/me", alice.auth()).await;
    assert_eq!(me["display_name"], "Alice, A.");

    // Without --out the sheet is printed; the group already exists and is reused.
    let more = dir.path().join("more.csv");
    std::fs::write(&more, "username,email\ndan,dan@example.test\n").unwrap();
    drop(server);
    let out = cli(
        &[
            "user",
            "import",
            more.to_str().unwrap(),
            "--group",
            "Class 4B",
            "--db",
            &db,
        ],
        None,
    )
    .await;
    out.assert_success();
    let rows = sheet_rows(&out.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "dan");
    let members = cli(&["group", "members", "Class 4B", "--db", &db], None).await;
    assert_eq!(members.stdout.lines().count(), 5, "{members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_class_list_names_every_bad_line_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_db(dir.path()).await;
    cli(
        &[
            "user",
            "add",
            "taken",
            "taken@example.test",
            "--password",
            "long-enough-1",
            "--db",
            &db,
        ],
        None,
    )
    .await
    .assert_success();
    let sheet = dir.path().join("sheet.csv");
    let import = |text: &'static str| {
        let (dir, db, sheet) = (dir.path().to_path_buf(), db.clone(), sheet.clone());
        async move {
            let list = dir.join("list.csv");
            std::fs::write(&list, text).unwrap();
            cli(
                &[
                    "user",
                    "import",
                    list.to_str().unwrap(),
                    "--group",
                    "G",
                    "--out",
                    sheet.to_str().unwrap(),
                    "--db",
                    &db,
                ],
                None,
            )
            .await
        }
    };

    // Every bad row is named by its line: bad fields, and duplicates within the file.
    let out = import(
        "username,email,password\n\
         ok1,ok1@example.test,\n\
         x,short@example.test,\n\
         ok2,not-an-email,\n\
         ok3,ok3@example.test,short\n\
         OK1,ok4@example.test,\n",
    )
    .await;
    out.assert_one_line_failure();
    for says in [
        "nothing imported",
        "line 3:",
        "line 4:",
        "line 5:",
        "line 6: username ok1 is also on line 2",
    ] {
        assert!(out.stderr.contains(says), "should say {says:?}: {out:?}");
    }
    assert!(!out.stderr.contains("line 2:"), "{out:?}");

    // Clashes with accounts already there, found before anything is written.
    let out = import(
        "username,email\nnew1,new1@example.test\nTAKEN,t2@example.test\nnew3,taken@example.test\n",
    )
    .await;
    out.assert_one_line_failure();
    for says in [
        "line 3: username TAKEN is taken",
        "line 4: email taken@example.test is taken",
    ] {
        assert!(out.stderr.contains(says), "should say {says:?}: {out:?}");
    }

    // The header must name username and email, and nothing unknown (a typo would drop a column).
    for (text, says) in [
        (
            "name,email\nok,ok@example.test\n",
            "unknown column \"name\"",
        ),
        (
            "username,mail\nok,ok@example.test\n",
            "unknown column \"mail\"",
        ),
        ("username\nok\n", "must name the columns username and email"),
        ("username,email\n", "no accounts"),
        ("username,email\nok,ok@example.test,extra\n", "line 2"),
    ] {
        let out = import(text).await;
        out.assert_one_line_failure();
        assert!(
            out.stderr.contains(says),
            "{text:?} should say {says:?}: {out:?}"
        );
    }

    // An existing sheet is never overwritten, and a missing list is named.
    std::fs::write(&sheet, "keep me").unwrap();
    let out = import("username,email\nfine,fine@example.test\n").await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&sheet).unwrap(), "keep me");
    std::fs::remove_file(&sheet).unwrap();
    let out = cli(
        &["user", "import", "/nonexistent/list.csv", "--db", &db],
        None,
    )
    .await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("/nonexistent/list.csv"), "{out:?}");

    // Nothing was created by any of it: one user, no group, no sheet.
    assert_eq!(user_count(&db), 1);
    let groups = cli(&["group", "list", "--db", &db], None).await;
    assert_eq!(groups.stdout.lines().count(), 1, "{groups:?}");
    assert!(!sheet.exists());
}
