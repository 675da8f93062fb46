//! What a hostile client can do with timing: flood its socket so a sign-out is never heard,
//! race two sign-outs, overflow someone's user channel with a burst of groups, and queue abandoned
//! logins so a classmate's correct one never gets its turn.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_stops_sending_still_hears_it_was_signed_out() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let ws = server.ws_ready(&ava).await;
    let (mut sink, mut stream) = ws.stream.split();
    // The flood: pings as fast as the socket takes them, bounded, until the socket closes.
    let flood = tokio::spawn(async move {
        let ping = Message::text(json!({"type": "ping"}).to_string());
        for _ in 0..2_000_000 {
            if sink.send(ping.clone()).await.is_err() {
                return;
            }
        }
    });
    let (status, _) = server
        .post_json("/v1/auth/logout", ava.auth(), &json!({"all": true}))
        .await;
    assert_eq!(status, 204);
    let close = tokio::time::timeout(TIMEOUT, async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Close(close)) => return close,
                Ok(_) => continue,
                Err(e) => panic!("the socket broke instead of closing: {e}"),
            }
        }
        panic!("the socket ended without a close frame")
    })
    .await
    .expect("a flooding socket was not closed after its session ended");
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy, "{close:?}");
    flood.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_sign_outs_leave_the_next_login_working() {
    let server = TestServer::start().await;
    let mike = server.mike().await;
    for round in 0..5 {
        let me = server.session("Mike", SEED_PASSWORD).await;
        let all = (0..4).map(|_| {
            let (api, token) = (server.api.clone(), me.token.clone());
            async move {
                api.post_json("/v1/auth/logout", Some(&token), &json!({"all": true}))
                    .await
                    .0
            }
        });
        for status in futures_util::future::join_all(all).await {
            assert!(status == 204 || status == 401, "round {round}: {status}");
        }
        let fresh = server.session("Mike", SEED_PASSWORD).await;
        let (status, body) = server.get("/v1/me", fresh.auth()).await;
        assert_eq!(
            status, 200,
            "round {round}: a new login's token is refused: {body}"
        );
        let mut ws = server.ws_ready(&fresh).await;
        ws.ping_pong().await;
    }
    let _ = mike;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_groups_does_not_disconnect_the_people_in_them() {
    let server = TestServer::start().await;
    let mike = server.mike().await;
    let pest = server.new_user("pest").await;
    let mut ws = server.ws_ready(&mike).await;
    // Far more at once than a user channel holds (16): the writer commits them together.
    const N: usize = 90;
    let creates = (0..N).map(|i| {
        let (api, token, mike) = (server.api.clone(), pest.token.clone(), mike.id);
        async move {
            let body = json!({"name": format!("Spam {i}"), "member_ids": [mike]});
            let (status, group) = api.post_json("/v1/groups", Some(&token), &body).await;
            assert_eq!(status, 201, "{group}");
            group["id"].as_i64().unwrap()
        }
    });
    let mut made: Vec<i64> = futures_util::future::join_all(creates).await;
    made.sort();
    // Mike's socket stays open and hears of every one of them, once.
    let mut heard = Vec::new();
    while heard.len() < N {
        let frame = ws.next_json().await;
        match frame["type"].as_str() {
            Some("member_added") if frame["user_id"] == mike.id => {
                heard.push(frame["group_id"].as_i64().unwrap())
            }
            _ => {}
        }
    }
    heard.sort();
    assert_eq!(heard, made);
    // And it still works: a message in the last of them arrives.
    let last = *made.last().unwrap();
    server.send(&pest, last, "still there?").await;
    assert_eq!(ws.next_of_type("group_message").await["group_id"], last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_cannot_queue_a_classmates_login_away() {
    let server = TestServer::start_with(|c| {
        c.address_failure_budget = chatserver::limits::Limit::parse("2/3600").unwrap();
    })
    .await;
    let from = server.via("127.0.0.7");
    for _ in 0..2 {
        let (status, _) = from
            .post_json(
                "/v1/users/login",
                None,
                &json!({"username": "Ava", "password": "wrong-guess"}),
            )
            .await;
        assert_eq!(status, 401);
    }
    // Forty logins sent and given up on at once: they must not reserve forty seconds of turns.
    let abandoned = (0..40).map(|_| {
        let from = from.clone();
        async move {
            let body = json!({"username": "Ava", "password": "x-x-x-x-x"});
            let login = from.post_json("/v1/users/login", None, &body);
            let _ = tokio::time::timeout(std::time::Duration::from_millis(300), login).await;
        }
    });
    futures_util::future::join_all(abandoned).await;
    // A classmate's correct login from the same address is answered within the pacing bound:
    // logged in, or told how long to wait.
    let started = std::time::Instant::now();
    let (status, body) = from
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "Mike", "password": SEED_PASSWORD}),
        )
        .await;
    assert!(status == 200 || status == 429, "{status}: {body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "the login waited {:?} behind abandoned attempts",
        started.elapsed()
    );
}
