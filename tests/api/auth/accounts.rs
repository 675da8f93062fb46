use crate::helpers::*;
use serde_json::json;
use std::collections::HashSet;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_own_profile_and_validates_input() {
    let server = TestServer::start().await;

    let body = server
        .register("alice", "alice@example.test", PASSWORD)
        .await;
    assert_keys(&body, &OWN_PROFILE_KEYS);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.test");
    assert_timestamp(&body["created_at"]);

    // Username: 3–32 of [A-Za-z0-9_.-]; the bounds themselves are fine.
    let min = "abc";
    let max = "x".repeat(32);
    server.register(min, "min@example.test", PASSWORD).await;
    server.register(&max, "max@example.test", PASSWORD).await;
    server
        .register("a.b-c_D9", "chars@example.test", PASSWORD)
        .await;
    let bad_usernames = [
        "ab".to_string(),
        "y".repeat(33),
        "has space".into(),
        "jürgen".into(),
        "名前です".into(),
        "emoji😀".into(),
        "semi;colon".into(),
        "".into(),
    ];
    for (i, name) in bad_usernames.iter().enumerate() {
        let got = register_attempt(&server, name, &format!("u{i}@example.test"), PASSWORD).await;
        assert_error(&got, 400, "invalid_username");
    }

    for email in [
        "not-an-email",
        "",
        "@example.test",
        "nobody@",
        "two@@example.test",
    ] {
        let got = register_attempt(&server, "emailtest", email, PASSWORD).await;
        assert_error(&got, 400, "invalid_email");
    }

    // Password: 8–128 characters.
    server
        .register("pw8", "pw8@example.test", &"p".repeat(8))
        .await;
    server
        .register("pw128", "pw128@example.test", &"p".repeat(128))
        .await;
    server.session("pw128", &"p".repeat(128)).await;
    for (i, pw) in ["p".repeat(7), "p".repeat(129), String::new()]
        .iter()
        .enumerate()
    {
        let got =
            register_attempt(&server, &format!("pwbad{i}"), &format!("pw{i}@x.test"), pw).await;
        assert_error(&got, 400, "invalid_password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_username_or_email_is_a_conflict_case_insensitively() {
    let server = TestServer::start().await;
    server
        .register("alice", "alice@example.test", PASSWORD)
        .await;

    let got = register_attempt(&server, "ALICE", "other@example.test", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    let got = register_attempt(&server, "alice2", "Alice@Example.TEST", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    // The seeded users too.
    let got = register_attempt(&server, "ava", "new@example.test", PASSWORD).await;
    assert_error(&got, 409, "conflict");
    let got = register_attempt(&server, "newbie", "MIKE@temp.com", PASSWORD).await;
    assert_error(&got, 409, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_email_or_username_case_insensitively() {
    let server = TestServer::start().await;
    let registered = server
        .register("Carol", "carol@example.test", PASSWORD)
        .await;
    let id = registered["id"].as_i64().unwrap();

    for credentials in [
        json!({"username": "Carol", "password": PASSWORD}),
        json!({"username": "cAROL", "password": PASSWORD}),
        json!({"email": "carol@example.test", "password": PASSWORD}),
        json!({"email": "CAROL@Example.Test", "password": PASSWORD}),
    ] {
        let (status, body) = server
            .post_json("/v1/users/login", None, &credentials)
            .await;
        assert_eq!(status, 200, "{credentials}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().unwrap_or(0) > 0, "{body}");
        assert!(
            body["token"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert_ne!(body["token"], body["refresh_token"]);
        assert_keys(&body["user"], &OWN_PROFILE_KEYS);
        assert_eq!(body["user"]["id"], id);
        assert_eq!(body["user"]["username"], "Carol");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_the_same_401_for_unknown_user_and_wrong_password() {
    let server = TestServer::start().await;
    let wrong_password = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "Ava", "password": "not it!!"}),
        )
        .await;
    let unknown_user = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "nobody", "password": "not it!!"}),
        )
        .await;
    let unknown_email = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"email": "nobody@example.test", "password": "not it!!"}),
        )
        .await;
    assert_error(&wrong_password, 401, "unauthorized");
    assert_eq!(
        unknown_user, wrong_password,
        "the answers must not tell the cases apart"
    );
    assert_eq!(unknown_email, wrong_password);

    // Neither username nor email.
    let (status, body) = server
        .post_json("/v1/users/login", None, &json!({"password": "whatever1"}))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_test_auth_and_user_profiles() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let (status, me) = server.get("/v1/me", ava.auth()).await;
    assert_eq!(status, 200, "{me}");
    assert_keys(&me, &OWN_PROFILE_KEYS);
    assert_eq!(me["id"], ava.id);
    assert_eq!(me["username"], "Ava");
    assert_eq!(me["email"], "ava@temp.com");

    let (status, body) = server.get("/v1/test-auth", mike.auth()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Access granted", "user_id": mike.id})
    );

    let (status, users) = server.get("/v1/users", ava.auth()).await;
    assert_eq!(status, 200, "{users}");
    let users = users.as_array().expect("array");
    let names: HashSet<&str> = users
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["Ava", "Mike"]));
    for u in users {
        assert_keys(u, &PUBLIC_PROFILE_KEYS);
        assert!(u.get("email").is_none(), "public profile leaks email: {u}");
    }

    let (status, found) = server.get("/v1/users?q=Mik", ava.auth()).await;
    assert_eq!(status, 200, "{found}");
    let found: Vec<i64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(found, vec![mike.id]);

    let (status, profile) = server
        .get(&format!("/v1/users/{}", mike.id), ava.auth())
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_keys(&profile, &PUBLIC_PROFILE_KEYS);
    assert_eq!(profile["username"], "Mike");
    assert!(
        profile.to_string().find("mike@temp.com").is_none(),
        "email leaked: {profile}"
    );

    let missing = mike.id.max(ava.id) + 1000;
    assert_error(
        &server
            .get(&format!("/v1/users/{missing}"), ava.auth())
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.get("/v1/users/abc", ava.auth()).await,
        404,
        "not_found",
    );

    // Protected routes need a token.
    for path in [
        "/v1/me",
        "/v1/test-auth",
        "/v1/users",
        &format!("/v1/users/{}", mike.id),
    ] {
        assert_error(&server.get(path, None).await, 401, "unauthorized");
    }
}
