//! Instances joined by a broker: three real server processes on one PostgreSQL database and one
//! NATS server (both child processes on loopback, see helpers). Run in the default suite when
//! PostgreSQL and nats-server are installed (CHATSERVER_REQUIRE_CLUSTER=1 makes their absence
//! a failure, as in CI); not again in the PostgreSQL run, where they would be the same tests.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

struct Cluster {
    db: String,
    nats: Nats,
    nodes: Vec<ServerProcess>,
}

/// `n` instances on a new database, or `None` (said why) when the services are missing.
async fn cluster(n: usize) -> Option<Cluster> {
    cluster_with(n, &[]).await
}

/// As `cluster`, with `extra` flags for every instance.
async fn cluster_with(n: usize, extra: &[&str]) -> Option<Cluster> {
    if on_postgres() {
        eprintln!("skipped in the PostgreSQL run: the cluster tests run in the default one");
        return None;
    }
    let missing = match (Postgres::installed(), Nats::binary()) {
        (true, Some(_)) => return Some(start(n, extra).await),
        (false, _) => "PostgreSQL (apt-get install postgresql)",
        (true, None) => "nats-server (apt-get install nats-server)",
    };
    assert!(
        std::env::var_os("CHATSERVER_REQUIRE_CLUSTER").is_none(),
        "CHATSERVER_REQUIRE_CLUSTER is set but {missing} is not installed"
    );
    eprintln!("skipped: {missing} is not installed");
    None
}

async fn start(n: usize, extra: &[&str]) -> Cluster {
    let db = tokio::task::spawn_blocking(|| Postgres::get().new_database())
        .await
        .unwrap();
    let nats = tokio::task::spawn_blocking(Nats::start).await.unwrap();
    let mut cluster = Cluster {
        db,
        nats,
        nodes: Vec::new(),
    };
    for _ in 0..n {
        let node = cluster.spawn(extra).await;
        cluster.nodes.push(node);
    }
    cluster
}

impl Cluster {
    async fn spawn(&self, extra: &[&str]) -> ServerProcess {
        let url = self.nats.url();
        let mut args = vec!["--broker", &url];
        args.extend(extra);
        ServerProcess::spawn_with(std::path::Path::new(&self.db), &args).await
    }
}

/// Polls `check` (every 25 ms) until it holds, within the timeout; says `what` if not.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + TIMEOUT;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {TIMEOUT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn ids(frames: &[Value]) -> Vec<i64> {
    frames.iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

/// The next `n` messages a socket is sent (other frames skipped).
async fn messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(ws.next_of_type("group_message").await);
    }
    out
}

/// Sends a last message: the next each socket gets is that one, so nothing arrived twice or
/// late before it.
async fn nothing_more(sockets: &mut [&mut Ws], api: &Api, by: &Session) {
    let marker = api.send(by, GENERAL, "marker").await;
    for ws in sockets {
        let next = ws.next_of_type("group_message").await;
        assert_eq!(
            next["id"], marker["id"],
            "only the marker was left to arrive"
        );
    }
}

async fn send_n(api: &Api, by: &Session, label: &str, n: usize, sent: &mut Vec<i64>) {
    for i in 0..n {
        let m = api.send(by, GENERAL, &format!("{label} {i}")).await;
        sent.push(m["id"].as_i64().unwrap());
    }
}

/// Polls `/healthz` on `api` until it answers `status` (within the timeout); its body then.
async fn health_becomes(api: &Api, status: u16) -> Value {
    let what = format!("/healthz answers {status}");
    eventually(&what, || async {
        api.get("/healthz", None).await.0 == status
    })
    .await;
    api.get("/healthz", None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_to_one_instance_reaches_sockets_on_the_others_once_in_order() {
    let Some(c) = cluster(3).await else { return };
    let (a, b, cc) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    for node in &c.nodes {
        let (status, health) = node.get("/healthz", None).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["backend"], "postgres");
        assert_eq!(health["broker"], "nats");
    }
    let ava = a.ava().await;
    let mike = b.mike().await;
    let mut on_a = a.ws_ready(&ava).await;
    let mut on_b = b.ws_ready(&mike).await;
    let mut on_c = cc.ws_ready(&mike).await;
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(
            a.send(&ava, GENERAL, &format!("m{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    for ws in [&mut on_a, &mut on_b, &mut on_c] {
        let got = messages(ws, sent.len()).await;
        assert_eq!(ids(&got), sent, "every message once, in order");
        assert_eq!(got[7]["content"], "m7");
    }
    nothing_more(&mut [&mut on_a, &mut on_b, &mut on_c], a, &ava).await;
    // Typing is never stored: it crosses on the broker alone.
    on_a.send_json(&json!({"type": "typing", "group_id": GENERAL}))
        .await;
    let typing = on_c.next_of_type("typing").await;
    assert_eq!(typing["user_id"], ava.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_every_instance_are_seen_by_every_socket_in_one_order() {
    let Some(c) = cluster(3).await else { return };
    let mut senders = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        senders.push(node.new_user(&format!("Sender{i}")).await);
    }
    let ava = c.nodes[0].ava().await;
    for s in &senders {
        c.nodes[0].add_member(&ava, GENERAL, s.id, None).await;
    }
    let mike = c.nodes[0].mike().await;
    let mut sockets = Vec::new();
    for node in &c.nodes {
        sockets.push(node.ws_ready(&mike).await);
    }
    const EACH: usize = 30;
    let mut writers = Vec::new();
    for (node, who) in c.nodes.iter().zip(&senders) {
        let (api, who) = (node.api.clone(), who.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..EACH {
                let m = api
                    .send(&who, GENERAL, &format!("{} {i}", who.username))
                    .await;
                acked.push(m["id"].as_i64().unwrap());
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for w in writers {
        let mine = w.await.unwrap();
        assert!(
            mine.windows(2).all(|p| p[0] < p[1]),
            "one sender's ids rise"
        );
        acked.extend(mine);
    }
    acked.sort_unstable();
    let history = ids(&c.nodes[2].full_history(&mike, GENERAL).await);
    assert!(history.ends_with(&acked), "the history holds every send");
    let mut orders = Vec::new();
    for ws in &mut sockets {
        let got = ids(&messages(ws, acked.len()).await);
        assert!(
            got.windows(2).all(|p| p[0] < p[1]),
            "ids rise on every socket (commit order): {got:?}"
        );
        assert_eq!(got, acked, "every acknowledged message once");
        orders.push(got);
    }
    assert!(orders.windows(2).all(|p| p[0] == p[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_retried_on_another_instance_returns_the_first_message() {
    let Some(c) = cluster(2).await else { return };
    let ava_a = c.nodes[0].ava().await;
    let body = json!({"content": "only once", "client_id": "retry-7"});
    let path = format!("/v1/messages/group/{GENERAL}");
    let (status, first) = c.nodes[0].post_json(&path, ava_a.auth(), &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = c.nodes[1].post_json(&path, ava_a.auth(), &body).await;
    assert_eq!(status, 200, "a retry elsewhere is a retry: {again}");
    assert_eq!(again, first);
    let history = c.nodes[1].full_history(&ava_a, GENERAL).await;
    let copies = history
        .iter()
        .filter(|m| m["content"] == "only once")
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_writers_loses_nothing_acknowledged_and_its_clients_resume_elsewhere(
) {
    let Some(mut c) = cluster(3).await else {
        return;
    };
    let ava = c.nodes[1].ava().await;
    let mike = c.nodes[1].mike().await;
    let mut on_b = c.nodes[1].ws_ready(&mike).await;
    // Two writers on B, each until B stops answering (bounded: at most 2000 sends).
    let mut writers = Vec::new();
    for w in 0..2 {
        let url = c.nodes[1].url(&format!("/v1/messages/group/{GENERAL}"));
        let token = ava.token.clone();
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = Vec::new();
            for i in 0..2000 {
                let body = json!({"content": format!("w{w} {i}")});
                let sent = http.post(&url).bearer_auth(&token).json(&body).send().await;
                // B is gone: this write's fate is unknown, and nothing later is sent.
                let Ok(answer) = sent else { break };
                if answer.status() != 201 {
                    break;
                }
                let Ok(m) = answer.json::<Value>().await else {
                    break;
                };
                acked.push(m["id"].as_i64().unwrap());
            }
            acked
        }));
    }
    // Some arrive on B's socket, then B dies.
    let seen = ids(&messages(&mut on_b, 40).await);
    c.nodes[1].kill9();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    acked.sort_unstable();
    // Each writer has at most one send in flight: all but those two of what B's socket was
    // sent had been acknowledged.
    assert!(
        acked.len() + 2 >= seen.len(),
        "{} acknowledged, {} seen",
        acked.len(),
        seen.len()
    );
    // Mike's client reconnects to C with `since`: it gets everything after what it saw.
    let since = *seen.last().unwrap();
    let mut on_c = c.nodes[2].ws_connect(&mike.token, Some(since)).await;
    let mut resumed = Vec::new();
    loop {
        let frame = on_c.next_json().await;
        match frame["type"].as_str() {
            Some("group_message") => resumed.push(frame["id"].as_i64().unwrap()),
            Some("ready") => break,
            _ => {}
        }
    }
    let after: Vec<i64> = acked.iter().copied().filter(|&id| id > since).collect();
    let resumed_set: HashSet<i64> = resumed.iter().copied().collect();
    assert!(
        after.iter().all(|id| resumed_set.contains(id)),
        "every acknowledged message after `since` is replayed"
    );
    let history: HashSet<i64> = ids(&c.nodes[0].full_history(&mike, GENERAL).await)
        .into_iter()
        .collect();
    assert!(acked.iter().all(|id| history.contains(id)), "none lost");
    // The survivors go on together.
    let mut on_a = c.nodes[0].ws_ready(&mike).await;
    let ava_c = c.nodes[2].ava().await;
    let last = c.nodes[2].send(&ava_c, GENERAL, "still here").await;
    assert_eq!(on_a.next_of_type("group_message").await["id"], last["id"]);
    assert_eq!(on_c.next_of_type("group_message").await["id"], last["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_stopped_and_restarted_under_load_loses_and_doubles_nothing() {
    let Some(c) = cluster(2).await else { return };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let ava = a.ava().await;
    let mike = b.mike().await;
    let mut on_b = b.ws_ready(&mike).await;
    let mut sent = Vec::new();
    send_n(a, &ava, "before", 20, &mut sent).await;
    assert_eq!(ids(&messages(&mut on_b, 20).await), sent);

    let nats = &c.nats;
    tokio::task::block_in_place(|| nats.stop());
    let down = health_becomes(a, 503).await;
    assert!(down["error"].as_str().unwrap().contains("broker"), "{down}");
    // Sends still succeed, and reach B from the database meanwhile.
    send_n(a, &ava, "during", 20, &mut sent).await;
    assert_eq!(ids(&messages(&mut on_b, 20).await), sent[20..]);

    tokio::task::block_in_place(|| nats.restart());
    health_becomes(a, 200).await;
    health_becomes(b, 200).await;
    send_n(a, &ava, "after", 20, &mut sent).await;
    assert_eq!(ids(&messages(&mut on_b, 20).await), sent[40..]);
    nothing_more(&mut [&mut on_b], a, &ava).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_on_one_instance_ends_the_session_on_every_instance() {
    let Some(c) = cluster(2).await else { return };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let mike = a.mike().await;
    let mut on_b = b.ws_ready(&mike).await;
    let (status, _) = b.get("/v1/me", mike.auth()).await;
    assert_eq!(status, 200);
    let (status, body) = a
        .post_json(
            "/v1/auth/logout",
            mike.auth(),
            &json!({"refresh_token": mike.refresh}),
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (closed, _) = on_b.until_closed().await;
    assert!(matches!(closed, Closed::Code(1008)), "{closed:?}");
    let (status, _) = b.get("/v1/me", mike.auth()).await;
    assert_eq!(status, 401, "B no longer honours the ended session's token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_alone_and_instances_joined_keep_off_each_others_database() {
    let Some(c) = cluster(1).await else { return };
    // Alone, on a database joined instances serve: refused, and told why.
    let out = cli(&["serve", "--db", &c.db, "--addr", "127.0.0.1:0"], None).await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("--broker"), "{}", out.stderr);
    // Joined, on a database a lone server holds: refused too.
    let alone_db = tokio::task::spawn_blocking(|| Postgres::get().new_database())
        .await
        .unwrap();
    let _alone = ServerProcess::spawn(std::path::Path::new(&alone_db)).await;
    let url = c.nats.url();
    let args = [
        "serve",
        "--db",
        &alone_db,
        "--addr",
        "127.0.0.1:0",
        "--broker",
        &url,
    ];
    let out = cli(&args, None).await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("without --broker"), "{}", out.stderr);
    // A broker on SQLite, or one nobody answers at: refused at once.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.db");
    let file = file.to_str().unwrap();
    let out = cli(&["serve", "--db", file, "--broker", &url], None).await;
    out.assert_one_line_failure();
    assert!(out.stderr.contains("PostgreSQL"), "{}", out.stderr);
    let nobody = "nats://127.0.0.1:1";
    let out = cli(&["serve", "--db", &c.db, "--broker", nobody], None).await;
    out.assert_one_line_failure();
    assert!(
        out.stderr.contains("cannot reach the broker"),
        "{}",
        out.stderr
    );
    let (status, _) = c.nodes[0].get("/healthz", None).await;
    assert_eq!(status, 200, "the joined instance is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_edits_and_reactions_made_on_one_instance_reach_sockets_on_another() {
    let Some(c) = cluster(2).await else { return };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let ava = a.ava().await;
    let mike = b.mike().await;
    let mut on_b = b.ws_ready(&mike).await;
    // A new group made on A: Mike's socket on B joins it and hears what is said there.
    let group = a.create_group(&ava, "Across", &[mike.id]).await;
    let added = on_b.next_of_type("member_added").await;
    assert_eq!(
        (added["group_id"].as_i64(), added["user_id"].as_i64()),
        (Some(group), Some(mike.id))
    );
    let m = a.send(&ava, group, "first draft").await;
    let id = m["id"].as_i64().unwrap();
    assert_eq!(on_b.next_of_type("group_message").await["id"], id);
    let (status, _) = a.edit(&ava, id, "final").await;
    assert_eq!(status, 200);
    let edited = on_b.next_of_type("message_edited").await;
    assert_eq!(
        (edited["id"].as_i64(), edited["content"].as_str()),
        (Some(id), Some("final"))
    );
    assert_eq!(a.react(&ava, id, "👍", true).await.0, 204);
    let reactions = on_b.next_of_type("message_reactions").await;
    assert_eq!(reactions["reactions"][0]["user_ids"], json!([ava.id]));
    // Removed on A: B's socket is told, and stops hearing the group.
    let (status, _) = a
        .delete(
            &format!("/v1/groups/{group}/members/{}", mike.id),
            ava.auth(),
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    let removed = on_b.next_of_type("member_removed").await;
    assert_eq!(removed["group_id"], group);
    a.send(&ava, group, "after").await;
    nothing_more(&mut [&mut on_b], a, &ava).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_the_socket_cap_count_the_sockets_of_every_instance() {
    let Some(c) = cluster_with(3, &["--max-sockets-per-user", "2"]).await else {
        return;
    };
    let (a, b, cc) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let ava = a.ava().await;
    let mike = cc.mike().await;
    let mut mike_on_c = cc.ws_ready(&mike).await;
    let online_on = |api: &Api, who: i64| {
        let (api, token) = (api.clone(), mike.token.clone());
        async move {
            let (_, user) = api.get(&format!("/v1/users/{who}"), Some(&token)).await;
            user["online"] == true
        }
    };
    // Ava comes online on A: Mike, on C, hears it, and C's answers show her online.
    let first_on_a = a.ws_ready(&ava).await;
    loop {
        let frame = mike_on_c.next_json_raw().await;
        if frame["type"] == "presence" && frame["user_id"] == ava.id {
            assert_eq!(frame["online"], true, "{frame}");
            break;
        }
    }
    eventually("C shows Ava online", || online_on(cc, ava.id)).await;
    // Two sockets on A: a third is refused on B, which counts A's.
    let second_on_a = a.ws_ready(&ava).await;
    let upgrade = |api: &Api| {
        let request = ws_url(api.addr, Some(&ava.token), None)
            .into_client_request()
            .unwrap();
        async move { ws_attempt(request).await.0 }
    };
    eventually("B refuses a third socket", || async {
        upgrade(b).await == 429
    })
    .await;
    second_on_a.close().await;
    eventually("B takes one again", || async { upgrade(b).await == 101 }).await;
    // Her last socket closes: Mike hears she left, and C shows her offline.
    first_on_a.close().await;
    loop {
        let frame = mike_on_c.next_json_raw().await;
        if frame["type"] == "presence" && frame["user_id"] == ava.id && frame["online"] == false {
            break;
        }
    }
    eventually("C shows Ava offline", || async {
        !online_on(cc, ava.id).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_sign_ups_count_on_every_instance() {
    let limits = ["--login-limit", "3/600", "--register-rate", "2"];
    let Some(c) = cluster_with(2, &limits).await else {
        return;
    };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let login = |api: &Api, password: &str| {
        let (api, body) = (
            api.clone(),
            json!({"username": "Mike", "password": password}),
        );
        async move { api.post_json("/v1/users/login", None, &body).await.0 }
    };
    for _ in 0..3 {
        assert_eq!(login(a, "wrong guess").await, 401);
    }
    a.register("Newone", "newone@example.test", PASSWORD).await;
    a.register("Newtwo", "newtwo@example.test", PASSWORD).await;
    // B hears of the three failures and two sign-ups (its metrics say when).
    eventually("B counted A's logins and sign-ups", || async {
        let (_, text) = b.raw(reqwest::Method::GET, "/metrics", None, None).await;
        text.lines()
            .find_map(|l| l.strip_prefix("chatserver_broker_limits_heard_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .is_some_and(|n| n >= 5.0)
    })
    .await;
    assert_eq!(
        login(b, SEED_PASSWORD).await,
        429,
        "Mike is locked on B for A's failures, even with the right password"
    );
    let (status, body) = b
        .post_json(
            "/v1/users/register",
            None,
            &json!({"username": "Newthree", "email": "n3@example.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 429, "this address used its sign-ups on A: {body}");
}
