//! What `serve` leaves and says: one file after a clean stop, nothing changed by a start that
//! fails, `--no-seed` remembered, and the banner's addresses for the class.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_the_database_file_alone_holds_every_message() {
    if sqlite_only("the -wal and -shm files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    let mut server = ServerProcess::spawn(&path).await;
    let ava = server.ava().await;
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(
            server.send(&ava, GENERAL, &format!("message {i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // While it runs, the WAL holds the recent writes.
    assert!(files_in(dir.path()).contains(&"class.db-wal".to_string()));
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(
        files_in(dir.path()),
        ["class.db"],
        "a clean stop leaves one file"
    );

    // Copy that one file elsewhere, as a teacher would, and find everything in it.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    assert_eq!(integrity_check(&copy), "ok");
    let copied = ServerProcess::spawn(&copy).await;
    let ava = copied.ava().await;
    let history = copied.full_history(&ava, GENERAL).await;
    assert_eq!(ids(&history), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_fails_the_start_and_leaves_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let db = dir.path().join("class.db");
    let out = cli(
        &["serve", "--addr", &addr, "--db", db.to_str().unwrap()],
        None,
    )
    .await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains(&addr), "{out:?}");
    assert!(
        files_in(dir.path()).is_empty(),
        "left {:?}",
        files_in(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_seed_is_remembered_and_the_banner_then_offers_no_demo_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    let mut first = ServerProcess::spawn_with(&path, &["--no-seed"]).await;
    let banner = first.banner().await;
    assert!(!banner.contains("Ava"), "{banner}");
    assert!(banner.contains("chatserver user add"), "{banner}");
    first.sigterm();
    first.wait_exit(Duration::from_secs(30)).await;

    // A later plain start does not seed it, and still offers no demo users.
    let second = ServerProcess::spawn(&path).await;
    let banner = second.banner().await;
    assert!(!banner.contains("Ava"), "{banner}");
    let (status, _) = second
        .post_json(
            "/v1/users/login",
            None,
            &serde_json::json!({"username": "Ava", "password": SEED_PASSWORD}),
        )
        .await;
    assert_eq!(status, 401);
    // Nor do migrations' INFO lines clutter the start.
    assert!(
        !second.stderr_text().contains("refinery"),
        "{}",
        second.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_network_the_banner_lists_the_students_address_with_a_qr_code() {
    let Some(ns) = Netns::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    // Inside the namespace, the machine's only other address is the namespace's own.
    let server =
        ServerProcess::spawn_under(&path, "0.0.0.0:0", &[], Under::Namespace(ns.name())).await;
    let banner = server.banner().await;
    let port = server.addr.port();
    let url = format!("http://{}:{port}/", ns.inner);
    assert!(
        banner.contains(&format!("Students on the same network open:\n  {url}\n")),
        "{banner}"
    );
    assert!(banner.contains("████"), "no QR code: {banner}");
    assert!(!banner.contains("127.0.0.1:"), "{banner}");
    // The address works from the namespace.
    let (status, body) = ns.curl(&[&format!("{url}healthz")]);
    assert_eq!(status, 200, "{body}");

    // On loopback there is neither a list nor a code.
    let local = ServerProcess::spawn(&dir.path().join("other.db")).await;
    let banner = local.banner().await;
    assert!(
        !banner.contains("Students") && !banner.contains('█'),
        "{banner}"
    );
    assert!(banner.contains("demo users Ava and Mike"), "{banner}");
}
