use crate::helpers::*;
use chatserver::limits::Limit;
use serde_json::json;
use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_gets_429_and_other_accounts_from_the_address_still_log_in() {
    let server = TestServer::start_with(small_account_limit).await;
    let zed = server.new_user("zed").await;

    for i in 0..3 {
        let (status, retry, body) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
        assert!(retry.is_none(), "failure {i}: a 401 carries no Retry-After");
    }
    // Locked now: a wrong password, the right one, and another spelling of the name.
    let wrong = login_by(&server, "username", "Ava", "wrong password").await;
    assert_locked(wrong, ACCOUNT_WINDOW, "wrong password while locked");
    let right = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(right, ACCOUNT_WINDOW, "right password while locked");
    let shouted = login_by(&server, "username", " AVA ", SEED_PASSWORD).await;
    assert_locked(shouted, ACCOUNT_WINDOW, "name in capitals while locked");

    // The same address, other accounts: unaffected, and their failures are their own.
    let (status, _, body) = login_by(&server, "username", "Mike", SEED_PASSWORD).await;
    assert_eq!(
        status, 200,
        "Mike is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&server, "email", "zed@example.test", PASSWORD).await;
    assert_eq!(
        status, 200,
        "zed is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&server, "username", "Mike", "wrong password").await;
    assert_error(&(status, body), 401, "unauthorized");

    // Ava's tokens issued before the lock-out still work: the lock is about logging in.
    let (status, _) = server.get("/v1/me", zed.auth()).await;
    assert_eq!(status, 200);
}

/// The lock-out belongs to the account, whichever name (username or email, any case) the
/// attempts use; otherwise each spelling gets its own guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_out_is_per_account_whichever_name_is_used() {
    let server = TestServer::start_with(small_account_limit).await;
    for _ in 0..3 {
        let (status, _, body) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
    }
    let by_email = login_by(&server, "email", "ava@temp.com", SEED_PASSWORD).await;
    assert_locked(
        by_email,
        ACCOUNT_WINDOW,
        "Ava locked by username, then logging in by email",
    );

    for _ in 0..3 {
        let (status, _, body) = login_by(&server, "email", "MIKE@temp.com", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
    }
    let by_name = login_by(&server, "username", "mike", SEED_PASSWORD).await;
    assert_locked(
        by_name,
        ACCOUNT_WINDOW,
        "Mike locked by email, then logging in by username",
    );
}

/// The lock-out ends when its window has passed (the server's own clock: a bounded poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_out_ends_after_its_window() {
    fn one_second(cfg: &mut chatserver::config::Config) {
        cfg.account_login_limit = Limit {
            failures: 2,
            window: Duration::from_secs(1),
        };
    }
    let server = TestServer::start_with(one_second).await;
    for _ in 0..2 {
        let (status, _, _) = login_by(&server, "username", "Ava", "wrong password").await;
        assert_eq!(status, 401);
    }
    let locked_at = Instant::now();
    let got = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(
        got,
        Duration::from_secs(1),
        "locked for a one-second window",
    );
    let deadline = locked_at + Duration::from_secs(10);
    loop {
        let (status, _, body) = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            Instant::now() < deadline,
            "still locked 10 s after a 1 s window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_ceiling_stops_one_address_guessing_at_many_accounts() {
    const WINDOW: Duration = Duration::from_secs(60);
    fn small_address_limit(cfg: &mut chatserver::config::Config) {
        cfg.account_login_limit = Limit {
            failures: 3,
            window: WINDOW,
        };
        cfg.address_login_limit = Limit {
            failures: 6,
            window: WINDOW,
        };
    }
    let server = TestServer::start_with(small_address_limit).await;
    // Two failures per account: no account reaches its own limit of 3.
    for name in ["ghost1", "ghost2", "Ava"] {
        for _ in 0..2 {
            let (status, _, body) = login_by(&server, "username", name, "wrong password").await;
            assert_error(&(status, body), 401, "unauthorized");
        }
    }
    // Six failures from 127.0.0.1: the address is at its ceiling, for every account.
    let mike = login_by(&server, "username", "Mike", SEED_PASSWORD).await;
    assert_locked(
        mike,
        WINDOW,
        "an unlocked account from an address at its ceiling",
    );
    let new = login_by(&server, "username", "ghost3", "wrong password").await;
    assert_locked(new, WINDOW, "a fresh name from an address at its ceiling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_slip_past_the_lock_out() {
    let server = TestServer::start().await;
    let guesses = (0..20).map(|i| {
        let api = server.api.clone();
        async move {
            let body = json!({"username": "Ava", "password": format!("wrong-guess-{i}")});
            api.post_json("/v1/users/login", None, &body).await.0
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + locked, statuses.len(), "{statuses:?}");
    // Each attempt is counted before its password is checked, so no more than the account's
    // limit of guesses is ever checked in one window, however many arrive at once.
    assert!(wrong <= 5, "{wrong} guesses were checked: {statuses:?}");
    assert!(locked >= 15, "{statuses:?}");
}
