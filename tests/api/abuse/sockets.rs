use crate::helpers::*;
use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_socket_over_the_cap_is_429_and_closing_one_frees_a_slot() {
    let server = TestServer::start_with(socket_cap).await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let mut open = Vec::new();
    for _ in 0..SOCKET_CAP {
        open.push(server.ws_ready(&ava).await);
    }
    let refused = try_upgrade(&server, &ava.token).await;
    let Err(got) = refused else {
        panic!(
            "socket {} of Ava was accepted over a cap of {SOCKET_CAP}",
            SOCKET_CAP + 1
        )
    };
    assert_error(&got, 429, "rate_limited");
    // The cap is per user: Mike still connects.
    let mut mike_ws = server.ws_ready(&mike).await;
    mike_ws.ping_pong().await;
    // Ava's open sockets are unaffected by the refusal.
    for ws in &mut open {
        ws.ping_pong().await;
    }

    // Close one; the server notices when its session ends, so poll (bounded) for the slot.
    open.pop().unwrap().close().await;
    let deadline = Instant::now() + TIMEOUT;
    let mut attempts = 0;
    let mut reopened = loop {
        attempts += 1;
        match try_upgrade(&server, &ava.token).await {
            Ok(ws) => break ws,
            Err(got) => {
                assert_error(&got, 429, "rate_limited");
                assert!(
                    Instant::now() < deadline,
                    "the slot of a closed socket was not freed within {TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    eprintln!("a closed socket's slot was free again after {attempts} upgrade attempt(s)");
    reopened.expect_type("ready").await;
    // Full again.
    let Err(got) = try_upgrade(&server, &ava.token).await else {
        panic!("a fourth socket was accepted after the slot was taken again");
    };
    assert_error(&got, 429, "rate_limited");
}

/// Many upgrades at once must not slip past the cap between the check and the registration.
/// The race is tried in several rounds, each with a user of its own (a fresh cap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upgrades_never_exceed_the_cap() {
    const ROUNDS: usize = 5;
    const ATTEMPTS: usize = 32;
    // The real binary: its scheduling is its own, not shared with this test's clients.
    let dir = tempfile::tempdir().unwrap();
    let cap = SOCKET_CAP.to_string();
    let server = ServerProcess::spawn_with(
        &dir.path().join("cap.db"),
        &["--max-sockets-per-user", &cap],
    )
    .await;
    let mut over = Vec::new();
    for round in 0..ROUNDS {
        let who = server.new_user(&format!("racer{round}")).await;
        // Every connection is open before any handshake is sent, so the upgrades really race.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(ATTEMPTS));
        let attempts: Vec<_> = (0..ATTEMPTS)
            .map(|_| {
                let api = server.api.clone();
                let token = who.token.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move { try_upgrade_after(&api, &token, Some(&barrier)).await })
            })
            .collect();
        let mut accepted = Vec::new();
        for a in attempts {
            match a.await.unwrap() {
                Ok(ws) => accepted.push(ws),
                Err(got) => assert_error(&got, 429, "rate_limited"),
            }
        }
        // Every accepted socket really is served (its ready arrives).
        for ws in &mut accepted {
            ws.expect_type("ready").await;
        }
        assert!(
            !accepted.is_empty(),
            "round {round}: no upgrade was accepted"
        );
        if accepted.len() > SOCKET_CAP {
            over.push(format!("round {round}: {} accepted", accepted.len()));
        }
    }
    assert!(
        over.is_empty(),
        "{ATTEMPTS} concurrent upgrades per round with a cap of {SOCKET_CAP}: {}",
        over.join("; ")
    );
}
