//! Text that looks like nothing, or like something else: blank content and names, control and
//! bidi characters, odd ids in paths, and passwords that differ only after the 72nd byte.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_and_control_characters_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let before = server.history(&ava, GENERAL, "").await.0.len();
    for content in [
        "\u{200B}",
        " \u{2060}\u{FEFF}\u{200B} ",
        "\u{3164}",
        "bell\u{7}",
        "nul\u{0}byte",
        "cr\rlf",
    ] {
        let got = server
            .post_json(
                &format!("/v1/messages/group/{GENERAL}"),
                ava.auth(),
                &json!({"content": content}),
            )
            .await;
        assert_error(&got, 400, "invalid_content");
    }
    assert_eq!(
        server.history(&ava, GENERAL, "").await.0.len(),
        before,
        "nothing was stored"
    );
    server
        .send(&ava, GENERAL, "tabs\tand\nnewlines are fine 👍\u{FE0F}")
        .await;

    for name in [
        "\u{200B}\u{200B}",
        "evil\u{202E}gnp.exe",
        "two\nlines",
        "nul\u{0}",
    ] {
        let got = server
            .post_json("/v1/groups", ava.auth(), &json!({"name": name}))
            .await;
        assert_error(&got, 400, "invalid_name");
        let got = server
            .patch("/v1/me", ava.auth(), &json!({"display_name": name}))
            .await;
        assert_error(&got, 400, "invalid_display_name");
    }
    let got = server
        .post_json("/v1/users/register", None, &json!({"username": "zero", "email": "ze\u{200B}ro@example.test", "password": PASSWORD}))
        .await;
    assert_error(&got, 400, "invalid_email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_in_paths_are_plain_decimal() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let (status, _) = server.get("/v1/groups/1", ava.auth()).await;
    assert_eq!(status, 200);
    for odd in ["01", "+1", "001", "1.0", "%2B1"] {
        let got = server.get(&format!("/v1/groups/{odd}"), ava.auth()).await;
        assert_error(&got, 404, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_that_differ_after_byte_72_do_not_log_in_as_each_other() {
    let server = TestServer::start().await;
    let stem = "x".repeat(72);
    let (right, wrong) = (format!("{stem}-right"), format!("{stem}-wrong"));
    server
        .register("longpass", "longpass@example.test", &right)
        .await;
    server.session("longpass", &right).await;
    let got = server
        .post_json(
            "/v1/users/login",
            None,
            &json!({"username": "longpass", "password": wrong}),
        )
        .await;
    assert_error(&got, 401, "unauthorized");
}

/// A hash made before the change (plain bcrypt) still logs in, and is replaced by a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_password_hashes_still_work_and_are_upgraded() {
    let server = TestServer::start().await;
    let old = bcrypt::hash("an old password", 4).unwrap();
    server.sql(&format!(
        "UPDATE users SET password_hash = '{old}' WHERE username = 'Mike'"
    ));
    server.session("Mike", "an old password").await;
    let stored =
        server.sql("SELECT password_hash FROM users WHERE username = 'Mike'")[0][0].clone();
    assert!(
        stored.starts_with("sha256$"),
        "the hash was not upgraded: {stored}"
    );
    server.session("Mike", "an old password").await;
}
