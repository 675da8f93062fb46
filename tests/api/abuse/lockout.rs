use crate::helpers::*;
use chatserver::limits::Limit;
use serde_json::json;
use std::time::{Duration, Instant};

use super::*;

/// Failures lock one account for the address they came from: the same account from another
/// address, and other accounts from the same address, sign in as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_gets_429_at_the_failing_address_only() {
    let server = TestServer::start_with(small_account_limit).await;
    let guesser = server.via("127.0.0.2");
    let zed = server.new_user("zed").await;

    for i in 0..3 {
        let (status, retry, body) = login_by(&guesser, "username", "Ava", "wrong password").await;
        assert_error(&(status, body), 401, "unauthorized");
        assert!(retry.is_none(), "failure {i}: a 401 carries no Retry-After");
    }
    // Locked for 127.0.0.2: a wrong password, the right one, and another spelling of the name.
    let wrong = login_by(&guesser, "username", "Ava", "wrong password").await;
    assert_locked(wrong, ACCOUNT_WINDOW, "wrong password while locked");
    let right = login_by(&guesser, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(right, ACCOUNT_WINDOW, "right password while locked");
    let shouted = login_by(&guesser, "username", " AVA ", SEED_PASSWORD).await;
    assert_locked(shouted, ACCOUNT_WINDOW, "name in capitals while locked");

    // Ava from an address that has not failed: never refused because of 127.0.0.2.
    let teacher = server.via("127.0.0.3");
    let (status, _, body) = login_by(&teacher, "username", "Ava", SEED_PASSWORD).await;
    assert_eq!(status, 200, "Ava from another address: {body}");

    // The guesser's address, other accounts: unaffected, and their failures are their own.
    let (status, _, body) = login_by(&guesser, "username", "Mike", SEED_PASSWORD).await;
    assert_eq!(
        status, 200,
        "Mike is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&guesser, "email", "zed@example.test", PASSWORD).await;
    assert_eq!(
        status, 200,
        "zed is not locked out by Ava's lock-out: {body}"
    );
    let (status, _, body) = login_by(&guesser, "username", "Mike", "wrong password").await;
    assert_error(&(status, body), 401, "unauthorized");

    // Tokens issued before the lock-out still work: the lock is about logging in.
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
        cfg.login_limit = Limit {
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

/// An address that fails at many accounts is slowed to one attempt a second, never refused:
/// the classmates behind it still sign in, and other addresses are not slowed at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_failing_at_many_accounts_is_slowed_not_refused() {
    fn small_budget(cfg: &mut chatserver::config::Config) {
        cfg.login_limit = Limit {
            failures: 3,
            window: ACCOUNT_WINDOW,
        };
        cfg.address_failure_budget = Limit {
            failures: 6,
            window: ACCOUNT_WINDOW,
        };
    }
    let server = TestServer::start_with(small_budget).await;
    let noisy = server.via("127.0.0.4");
    // Two failures per account: no account reaches its own limit of 3.
    for name in ["ghost1", "ghost2", "Ava"] {
        for _ in 0..2 {
            let (status, _, body) = login_by(&noisy, "username", name, "wrong password").await;
            assert_error(&(status, body), 401, "unauthorized");
        }
    }
    // Six failures from 127.0.0.4: its attempts now come a second apart, and still answer.
    let started = Instant::now();
    for _ in 0..3 {
        let (status, _, body) = login_by(&noisy, "username", "Mike", SEED_PASSWORD).await;
        assert_eq!(
            status, 200,
            "a correct login from the slowed address: {body}"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "three attempts over the budget took only {:?}",
        started.elapsed()
    );
    let (status, _, body) = login_by(&noisy, "username", "ghost3", "wrong password").await;
    assert_error(&(status, body), 401, "unauthorized");
    let quiet = server.via("127.0.0.5");
    let (status, _, body) = login_by(&quiet, "username", "Mike", SEED_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_slip_past_the_lock_out() {
    let server = TestServer::start().await;
    let guesses = (0..30).map(|i| {
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
    // Attempts wait while those in flight could lock the account, so no more than its limit
    // of guesses (10) is ever checked in one window, however many arrive at once.
    assert!(wrong <= 10, "{wrong} guesses were checked: {statuses:?}");
    assert!(locked >= 20, "{statuses:?}");
}

/// Many correct logins at once (a class signing in from behind one address) all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_correct_logins_are_never_refused() {
    let server = TestServer::start().await;
    let logins = (0..60).map(|_| {
        let api = server.api.clone();
        async move {
            let body = json!({"username": "Ava", "password": SEED_PASSWORD});
            api.post_json("/v1/users/login", None, &body).await.0
        }
    });
    let statuses = futures_util::future::join_all(logins).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// A wrong current password when changing it counts as a failed login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_current_passwords_are_limited_like_logins() {
    let server = TestServer::start_with(small_account_limit).await;
    let ava = server.ava().await;
    let change = |api: Api, current: &'static str| {
        let token = ava.token.clone();
        async move {
            let body = json!({"current_password": current, "new_password": "a brand new secret"});
            api.put("/v1/me/password", Some(&token), &body).await
        }
    };
    for _ in 0..3 {
        let got = change(server.api.clone(), "not my password").await;
        assert_error(&got, 403, "forbidden");
    }
    assert_error(
        &change(server.api.clone(), "not my password").await,
        429,
        "rate_limited",
    );
    // So is logging in to that account from that address.
    let login = login_by(&server, "username", "Ava", SEED_PASSWORD).await;
    assert_locked(login, ACCOUNT_WINDOW, "login after wrong current passwords");
    // From another address the right current password still works.
    let elsewhere = server.via("127.0.0.6");
    let (status, body) = change(elsewhere, SEED_PASSWORD).await;
    assert_eq!(status, 204, "{body}");
}
