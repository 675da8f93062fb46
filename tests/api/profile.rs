//! Profiles: editing one's own, finding others by name, and changing one's password.

use crate::helpers::*;
use serde_json::{json, Value};

const AVA_EMAIL: &str = "ava@temp.com";
const MIKE_EMAIL: &str = "mike@temp.com";

async fn patch_me(api: &Api, by: &Session, body: &Value) -> (u16, Value) {
    api.patch("/v1/me", by.auth(), body).await
}

async fn me(api: &Api, by: &Session) -> Value {
    let (status, body) = api.get("/v1/me", by.auth()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// (display_name, avatar_url, public_key)
fn fields(p: &Value) -> (Value, Value, Value) {
    (
        p["display_name"].clone(),
        p["avatar_url"].clone(),
        p["public_key"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_me_sets_each_field_leaves_absent_ones_and_null_clears() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let start = me(&server, &ava).await;
    assert_eq!(fields(&start), (Value::Null, Value::Null, Value::Null));

    let (status, p) = patch_me(&server, &ava, &json!({"display_name": "  Ava Lovelace  "})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["id"], ava.id);
    assert_eq!(p["username"], "Ava");
    assert_eq!(p["email"], AVA_EMAIL, "the own profile has the email: {p}");
    assert_eq!(p["created_at"], start["created_at"]);
    assert_eq!(
        fields(&p),
        (json!("Ava Lovelace"), Value::Null, Value::Null)
    );

    let (status, p) = patch_me(
        &server,
        &ava,
        &json!({"avatar_url": "https://img.example/ava.png"}),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        fields(&p),
        (
            json!("Ava Lovelace"),
            json!("https://img.example/ava.png"),
            Value::Null
        )
    );

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ava@laptop";
    let (status, p) = patch_me(&server, &ava, &json!({"public_key": key})).await;
    assert_eq!(status, 200, "{p}");
    let full = (
        json!("Ava Lovelace"),
        json!("https://img.example/ava.png"),
        json!(key),
    );
    assert_eq!(fields(&p), full);

    // Nothing given: nothing changes.
    let (status, p) = patch_me(&server, &ava, &json!({})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(fields(&p), full);
    assert_eq!(fields(&me(&server, &ava).await), full);

    // Others see it in the public profile, without the email.
    let (status, public) = server
        .get(&format!("/v1/users/{}", ava.id), mike.auth())
        .await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(fields(&public), full);
    assert_no_email(&public, &[AVA_EMAIL], "public profile");

    // null clears, and so does "".
    let (status, p) = patch_me(&server, &ava, &json!({"display_name": null})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        fields(&p),
        (
            Value::Null,
            json!("https://img.example/ava.png"),
            json!(key)
        )
    );
    let (status, p) = patch_me(&server, &ava, &json!({"avatar_url": ""})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(fields(&p), (Value::Null, Value::Null, json!(key)));
    let (status, p) = patch_me(
        &server,
        &ava,
        &json!({"public_key": null, "display_name": "Ava", "avatar_url": "http://plain.example/a"}),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        fields(&p),
        (json!("Ava"), json!("http://plain.example/a"), Value::Null)
    );
    let (status, p) = patch_me(&server, &ava, &json!({"display_name": ""})).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["display_name"], Value::Null);
    assert_eq!(fields(&me(&server, &ava).await), fields(&p));

    // Mike's profile was never touched.
    assert_eq!(
        fields(&me(&server, &mike).await),
        (Value::Null, Value::Null, Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_me_validates_and_a_refused_patch_changes_nothing() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let (status, set) = patch_me(
        &server,
        &ava,
        &json!({"display_name": "Before", "avatar_url": "https://a.example/x", "public_key": "k"}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    let before = fields(&set);

    let long_url = format!("https://a.example/{}", "x".repeat(2048 - 18 + 1));
    assert_eq!(long_url.len(), 2049);
    let bad: Vec<(Value, &str)> = vec![
        (
            json!({"display_name": "x".repeat(65)}),
            "invalid_display_name",
        ),
        (
            json!({"display_name": "é".repeat(65)}),
            "invalid_display_name",
        ),
        (
            json!({"display_name": format!("  {}  ", "y".repeat(65))}),
            "invalid_display_name",
        ),
        (
            json!({"avatar_url": "ftp://a.example/x.png"}),
            "invalid_avatar_url",
        ),
        (
            json!({"avatar_url": "a.example/x.png"}),
            "invalid_avatar_url",
        ),
        (
            json!({"avatar_url": "javascript:alert(1)"}),
            "invalid_avatar_url",
        ),
        (
            json!({"avatar_url": "https:/a.example"}),
            "invalid_avatar_url",
        ),
        (json!({"avatar_url": long_url}), "invalid_avatar_url"),
        (
            json!({"public_key": "k".repeat(8193)}),
            "invalid_public_key",
        ),
        // One bad field spoils the whole patch.
        (
            json!({"display_name": "After", "avatar_url": "nope"}),
            "invalid_avatar_url",
        ),
        (
            json!({"display_name": "After", "public_key": "k".repeat(8193)}),
            "invalid_public_key",
        ),
        // Unknown fields, fields that are not the user's to change, wrong types.
        (json!({"nickname": "After"}), "invalid_json"),
        (
            json!({"display_name": "After", "email": "new@example.test"}),
            "invalid_json",
        ),
        (json!({"username": "Ava2"}), "invalid_json"),
        (json!({"display_name": 5}), "invalid_json"),
        (json!({"avatar_url": true}), "invalid_json"),
        (json!({"public_key": ["k"]}), "invalid_json"),
    ];
    for (body, code) in &bad {
        let got = patch_me(&server, &ava, body).await;
        assert_error(&got, 400, code);
    }
    let got = server
        .raw(
            reqwest::Method::PATCH,
            "/v1/me",
            ava.auth(),
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(got.0, 400, "{got:?}");
    assert_error(
        &(got.0, serde_json::from_str(&got.1).unwrap()),
        400,
        "invalid_json",
    );
    assert_error(
        &server
            .patch("/v1/me", None, &json!({"display_name": "x"}))
            .await,
        401,
        "unauthorized",
    );
    assert_eq!(
        fields(&me(&server, &ava).await),
        before,
        "a refused patch changed the profile"
    );

    // The limits themselves are allowed.
    let exact_url = format!("https://a.example/{}", "x".repeat(2048 - 18));
    assert_eq!(exact_url.len(), 2048);
    let ok = json!({
        "display_name": format!("  {}  ", "é".repeat(64)),
        "avatar_url": exact_url,
        "public_key": "k".repeat(8192),
    });
    let (status, p) = patch_me(&server, &ava, &ok).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["display_name"], "é".repeat(64));
    assert_eq!(p["avatar_url"].as_str().map(str::len), Some(2048));
    assert_eq!(p["public_key"].as_str().map(str::len), Some(8192));
}

/// The body is an object of named fields; an array (which serde would read as the fields in
/// declaration order) is not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_body_that_is_not_an_object_is_invalid_json() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    for body in [
        json!(["Someone else"]),
        json!("Someone else"),
        json!(null),
        json!(7),
    ] {
        assert_error(&patch_me(&server, &ava, &body).await, 400, "invalid_json");
    }
    assert_eq!(
        fields(&me(&server, &ava).await),
        (Value::Null, Value::Null, Value::Null),
        "a body that is not an object changed the profile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_found_by_display_name_and_no_listing_shows_an_email() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let (status, _) = patch_me(&server, &zed, &json!({"display_name": "Zephyr Queen"})).await;
    assert_eq!(status, 200);
    let (status, _) = patch_me(&server, &ava, &json!({"display_name": "Ava Lovelace"})).await;
    assert_eq!(status, 200);
    let emails = [AVA_EMAIL, MIKE_EMAIL, "zed@example.test"];

    let find = |q: &'static str| {
        let server = &server;
        let mike = &mike;
        async move {
            let (status, body) = server
                .get(&format!("/v1/users?q={}", enc(q)), mike.auth())
                .await;
            assert_eq!(status, 200, "q={q}: {body}");
            assert_no_email(&body, &emails, "GET /v1/users?q=");
            body.as_array()
                .expect("array")
                .iter()
                .map(|u| u["id"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(find("queen").await, vec![zed.id]);
    assert_eq!(find("ZEPH").await, vec![zed.id], "case-insensitive");
    assert_eq!(
        find("phyr Qu").await,
        vec![zed.id],
        "substring with a space"
    );
    assert_eq!(find("zed").await, vec![zed.id], "username still matches");
    assert_eq!(find("LOVE").await, vec![ava.id]);
    assert_eq!(find("nobody-like-this").await, Vec::<i64>::new());
    // An email is not a name: searching by it finds no one.
    assert_eq!(find("temp.com").await, Vec::<i64>::new());
    assert_eq!(find("example.test").await, Vec::<i64>::new());

    // Clearing the display name removes it from matching.
    let (status, _) = patch_me(&server, &zed, &json!({"display_name": null})).await;
    assert_eq!(status, 200);
    assert_eq!(find("queen").await, Vec::<i64>::new());

    // Nowhere public shows an email.
    let group = server.create_group(&ava, "Names", &[mike.id, zed.id]).await;
    server.direct_id(&ava, zed.id).await;
    for path in [
        "/v1/users".to_string(),
        format!("/v1/users/{}", ava.id),
        format!("/v1/users/{}", zed.id),
        format!("/v1/groups/{group}"),
        format!("/v1/groups/{group}/members"),
        "/v1/groups".to_string(),
    ] {
        let (status, body) = server.get(&path, zed.auth()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_email(&body, &emails, &path);
    }
    let (status, body) = server.direct(&zed, ava.id).await;
    assert_eq!(status, 200, "{body}");
    assert_no_email(&body, &emails, "POST /v1/direct");
}

async fn login_attempt(api: &Api, username: &str, password: &str) -> (u16, Value) {
    api.post_json(
        "/v1/users/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

async fn refresh(api: &Api, token: &str) -> (u16, Value) {
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": token}))
        .await
}

async fn put_password(api: &Api, by: &Session, body: &Value) -> (u16, Value) {
    api.put("/v1/me/password", by.auth(), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_revokes_refresh_tokens_and_the_old_password() {
    let server = TestServer::start().await;
    let laptop = server.ava().await;
    let phone = server.ava().await;
    let mike = server.mike().await;
    let new_password = "a much better passphrase";

    // Refusals first; none of them changes anything.
    assert_error(
        &put_password(
            &server,
            &laptop,
            &json!({"current_password": "not my password", "new_password": new_password}),
        )
        .await,
        403,
        "forbidden",
    );
    for bad in ["short", "", &"p".repeat(129)] {
        assert_error(
            &put_password(
                &server,
                &laptop,
                &json!({"current_password": SEED_PASSWORD, "new_password": bad}),
            )
            .await,
            400,
            "invalid_password",
        );
    }
    for body in [
        json!({"current_password": SEED_PASSWORD}),
        json!({"new_password": new_password}),
        json!({"current_password": SEED_PASSWORD, "new_password": new_password, "extra": 1}),
        json!({"current_password": SEED_PASSWORD, "new_password": 12345678}),
    ] {
        assert_error(
            &put_password(&server, &laptop, &body).await,
            400,
            "invalid_json",
        );
    }
    assert_error(
        &server
            .put(
                "/v1/me/password",
                None,
                &json!({"current_password": SEED_PASSWORD, "new_password": new_password}),
            )
            .await,
        401,
        "unauthorized",
    );
    let (status, body) = login_attempt(&server, "Ava", SEED_PASSWORD).await;
    assert_eq!(status, 200, "the refusals changed the password: {body}");
    let before_change = body["refresh_token"].as_str().unwrap().to_string();

    // The change.
    let (status, body) = put_password(
        &server,
        &laptop,
        &json!({"current_password": SEED_PASSWORD, "new_password": new_password}),
    )
    .await;
    assert_eq!((status, body), (204, Value::Null));

    // Every refresh token of Ava's is revoked; Mike's is not.
    for token in [&laptop.refresh, &phone.refresh, &before_change] {
        assert_error(&refresh(&server, token).await, 401, "unauthorized");
    }
    let (status, body) = refresh(&server, &mike.refresh).await;
    assert_eq!(status, 200, "another user's tokens are untouched: {body}");

    // The old password no longer logs in; the new one does, by username or email.
    assert_error(
        &login_attempt(&server, "Ava", SEED_PASSWORD).await,
        401,
        "unauthorized",
    );
    let fresh = server.session("Ava", new_password).await;
    assert_eq!(fresh.id, laptop.id);
    let (status, body) = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"email": AVA_EMAIL, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh(&server, &fresh.refresh).await;
    assert_eq!(status, 200, "a token issued after the change works: {body}");

    // The current password is now the new one.
    assert_error(
        &put_password(
            &server,
            &fresh,
            &json!({"current_password": SEED_PASSWORD, "new_password": "yet another one"}),
        )
        .await,
        403,
        "forbidden",
    );
    let (status, _) = put_password(
        &server,
        &fresh,
        &json!({"current_password": new_password, "new_password": "12345678"}),
    )
    .await;
    assert_eq!(status, 204, "8 characters is enough");
    server.session("Ava", "12345678").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_search_takes_wildcard_characters_literally() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let ann = server.new_user("ann_lee").await;
    let bob = server.new_user("bob").await;
    let (status, _) = patch_me(&server, &bob, &json!({"display_name": "100% Bob"})).await;
    assert_eq!(status, 200);

    let find = |q: &'static str| {
        let server = &server;
        let ava = &ava;
        async move {
            let (status, body) = server
                .get(&format!("/v1/users?q={}", enc(q)), ava.auth())
                .await;
            assert_eq!(status, 200, "q={q}: {body}");
            let mut found: Vec<i64> = body
                .as_array()
                .expect("array")
                .iter()
                .map(|u| u["id"].as_i64().unwrap())
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(
        find("_").await,
        vec![ann.id],
        "`_` is a character, not a wildcard"
    );
    assert_eq!(find("n_l").await, vec![ann.id]);
    assert_eq!(find("a_").await, Vec::<i64>::new());
    assert_eq!(
        find("%").await,
        vec![bob.id],
        "`%` is a character, not a wildcard"
    );
    assert_eq!(find("a%e").await, Vec::<i64>::new());
    assert_eq!(find("\\").await, Vec::<i64>::new());
    assert_eq!(find("'").await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_search_is_case_insensitive_beyond_ascii() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let emile = server.new_user("emile").await;
    let (status, _) = patch_me(&server, &emile, &json!({"display_name": "Émile Öztürk"})).await;
    assert_eq!(status, 200);
    for q in ["Émile", "émile", "ÉMILE", "öztürk", "ÖZTÜRK"] {
        let (status, body) = server
            .get(&format!("/v1/users?q={}", enc(q)), ava.auth())
            .await;
        assert_eq!(status, 200, "{body}");
        let found: Vec<i64> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect();
        assert_eq!(found, vec![emile.id], "q={q:?}");
    }
}
