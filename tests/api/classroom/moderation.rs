//! Announcement groups (`posting: "admins"`) and muting a member until a time.

use serde_json::{json, Value};

use crate::helpers::*;

/// A teacher (owner), a helper (admin) and two students in a new group.
struct Class {
    teacher: Session,
    helper: Session,
    alice: Session,
    bob: Session,
    group: i64,
}

async fn class(server: &TestServer) -> Class {
    let teacher = server.new_user("teacher").await;
    let helper = server.new_user("helper").await;
    let alice = server.new_user("alice").await;
    let bob = server.new_user("bob").await;
    let group = server
        .create_group(&teacher, "Class 4B", &[alice.id, bob.id])
        .await;
    server
        .add_member(&teacher, group, helper.id, Some("admin"))
        .await;
    Class {
        teacher,
        helper,
        alice,
        bob,
        group,
    }
}

async fn post(server: &TestServer, who: &Session, group: i64, text: &str) -> (u16, Value) {
    server
        .post_json(
            &format!("/v1/messages/group/{group}"),
            who.auth(),
            &json!({"content": text}),
        )
        .await
}

async fn set_member(
    server: &TestServer,
    by: &Session,
    group: i64,
    user: i64,
    body: Value,
) -> (u16, Value) {
    server
        .patch(
            &format!("/v1/groups/{group}/members/{user}"),
            by.auth(),
            &body,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_group_lets_only_the_owner_and_admins_post() {
    let server = TestServer::start().await;
    let c = class(&server).await;
    let mut alice_ws = server.ws_ready(&c.alice).await;

    // A member cannot make the group an announcement group; the owner can, and every
    // member's socket learns of it with the group object.
    let to_admins = json!({"posting": "admins"});
    let path = format!("/v1/groups/{}", c.group);
    assert_error(
        &server.patch(&path, c.alice.auth(), &to_admins).await,
        403,
        "forbidden",
    );
    let (status, group) = server.patch(&path, c.teacher.auth(), &to_admins).await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["posting"], "admins");
    assert_eq!(group["name"], "Class 4B", "a posting change keeps the name");
    let updated = alice_ws.next_of_type("group_updated").await;
    assert_eq!(updated["group"]["posting"], "admins", "{updated}");
    assert_eq!(
        server.conversation(&c.alice, c.group).await["posting"],
        "admins"
    );

    // Members' sends are refused over HTTP and the socket, and nothing is stored.
    assert_error(
        &post(&server, &c.alice, c.group, "hi all").await,
        403,
        "read_only",
    );
    alice_ws
        .send_json(
            &json!({"type": "send", "group_id": c.group, "content": "hi", "client_id": "a1"}),
        )
        .await;
    let refused = alice_ws.next_of_type("error").await;
    assert_eq!(refused["code"], "read_only", "{refused}");
    assert_eq!(refused["client_id"], "a1", "{refused}");
    assert!(server.full_history(&c.teacher, c.group).await.is_empty());

    // The owner and the admin post, and the members read it live.
    let (status, _) = post(&server, &c.teacher, c.group, "Homework: page 12").await;
    assert_eq!(status, 201);
    let (status, _) = post(&server, &c.helper, c.group, "Due Friday").await;
    assert_eq!(status, 201);
    let m = alice_ws.next_of_type("group_message").await;
    assert_eq!(m["content"], "Homework: page 12");
    assert_eq!(
        alice_ws.next_of_type("group_message").await["content"],
        "Due Friday"
    );

    // An admin can switch it back; then members post again.
    let (status, group) = server
        .patch(&path, c.helper.auth(), &json!({"posting": "everyone"}))
        .await;
    assert_eq!((status, &group["posting"]), (200, &json!("everyone")));
    assert_eq!(post(&server, &c.bob, c.group, "thanks").await.0, 201);

    // Bad values change nothing.
    for bad in [
        json!({"posting": "nobody"}),
        json!({"posting": 1}),
        json!({}),
    ] {
        let got = server.patch(&path, c.teacher.auth(), &bad).await;
        assert_eq!(got.0, 400, "{bad}: {got:?}");
    }
    assert_eq!(
        server.conversation(&c.teacher, c.group).await["posting"],
        "everyone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_member_cannot_post_or_edit_until_the_mute_ends() {
    let server = TestServer::start().await;
    let c = class(&server).await;
    let (_, earlier) = post(&server, &c.alice, c.group, "before the mute").await;
    let mut bob_ws = server.ws_ready(&c.bob).await;
    let mut alice_ws = server.ws_ready(&c.alice).await;

    let until = "2999-01-01T10:00:00+02:00";
    let (status, member) = set_member(
        &server,
        &c.helper,
        c.group,
        c.alice.id,
        json!({"muted_until": until}),
    )
    .await;
    assert_eq!(status, 200, "{member}");
    // Given with an offset, kept and shown in UTC.
    assert_eq!(
        member["muted_until"], "2999-01-01T08:00:00.000Z",
        "{member}"
    );
    assert_eq!(member["role"], "member");
    let seen = bob_ws.next_of_type("member_updated").await;
    assert_eq!(seen["user_id"], c.alice.id, "{seen}");
    assert_eq!(seen["muted_until"], "2999-01-01T08:00:00.000Z", "{seen}");

    let (_, members) = server
        .get(&format!("/v1/groups/{}/members", c.group), c.bob.auth())
        .await;
    let alice = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == c.alice.id)
        .expect("alice listed");
    assert_eq!(alice["muted_until"], "2999-01-01T08:00:00.000Z");

    let refused = post(&server, &c.alice, c.group, "let me talk").await;
    assert_error(&refused, 403, "muted");
    assert!(refused.1["error"]
        .as_str()
        .unwrap()
        .contains("2999-01-01T08:00:00.000Z"));
    alice_ws
        .send_json(
            &json!({"type": "send", "group_id": c.group, "content": "hi", "client_id": "m1"}),
        )
        .await;
    assert_eq!(alice_ws.next_of_type("error").await["code"], "muted");
    let edit = server
        .edit(&c.alice, earlier["id"].as_i64().unwrap(), "sneaky edit")
        .await;
    assert_error(&edit, 403, "muted");
    // Others still post, and the mute is the group's only: Alice's direct chats are open.
    assert_eq!(post(&server, &c.bob, c.group, "carry on").await.0, 201);
    server.send_direct(&c.alice, c.bob.id, "psst").await;

    // Unmuted (null): she posts again.
    let (status, member) = set_member(
        &server,
        &c.teacher,
        c.group,
        c.alice.id,
        json!({"muted_until": null}),
    )
    .await;
    assert_eq!((status, &member["muted_until"]), (200, &Value::Null));
    assert_eq!(post(&server, &c.alice, c.group, "back").await.0, 201);

    // A time already past mutes nobody.
    let past = json!({"muted_until": "2001-01-01T00:00:00Z"});
    assert_eq!(
        set_member(&server, &c.teacher, c.group, c.alice.id, past)
            .await
            .0,
        200
    );
    assert_eq!(post(&server, &c.alice, c.group, "still here").await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_change_whom_and_bad_changes_change_nothing() {
    let server = TestServer::start().await;
    let c = class(&server).await;
    let soon = json!({"muted_until": "2999-01-01T00:00:00Z"});
    let g = c.group;

    // Members change nobody; admins change members but not admins, the owner, or themselves.
    assert_error(
        &set_member(&server, &c.bob, g, c.alice.id, soon.clone()).await,
        403,
        "forbidden",
    );
    assert_error(
        &set_member(&server, &c.helper, g, c.teacher.id, soon.clone()).await,
        403,
        "forbidden",
    );
    assert_error(
        &set_member(&server, &c.helper, g, c.helper.id, soon.clone()).await,
        403,
        "forbidden",
    );
    assert_error(
        &set_member(&server, &c.teacher, g, c.teacher.id, soon.clone()).await,
        403,
        "forbidden",
    );
    // The owner promotes and demotes; a promoted admin then posts in an announcement group.
    let (status, m) = set_member(&server, &c.teacher, g, c.bob.id, json!({"role": "admin"})).await;
    assert_eq!((status, &m["role"]), (200, &json!("admin")), "{m}");
    assert_error(
        &set_member(&server, &c.helper, g, c.bob.id, soon.clone()).await,
        403,
        "forbidden",
    );
    server
        .patch(
            &format!("/v1/groups/{g}"),
            c.teacher.auth(),
            &json!({"posting": "admins"}),
        )
        .await;
    assert_eq!(post(&server, &c.bob, g, "as an admin").await.0, 201);
    let (status, m) = set_member(&server, &c.teacher, g, c.bob.id, json!({"role": "member"})).await;
    assert_eq!((status, &m["role"]), (200, &json!("member")));
    assert_error(
        &post(&server, &c.bob, g, "as a member").await,
        403,
        "read_only",
    );

    // Nobody is made owner this way; bad times, roles and bodies are 400; a stranger is 404.
    for (body, code) in [
        (json!({"role": "owner"}), "invalid_role"),
        (json!({"role": "boss"}), "invalid_role"),
        (json!({"muted_until": "tomorrow"}), "invalid_time"),
        (
            json!({"muted_until": "2999-13-01T00:00:00Z"}),
            "invalid_time",
        ),
        (json!({"muted_until": 5}), "invalid_json"),
        (json!({}), "invalid_json"),
    ] {
        assert_error(
            &set_member(&server, &c.teacher, g, c.alice.id, body.clone()).await,
            400,
            code,
        );
    }
    let stranger = server.new_user("stranger").await;
    assert_error(
        &set_member(&server, &c.teacher, g, stranger.id, soon.clone()).await,
        404,
        "not_found",
    );
    // Not one of the refusals changed Alice.
    let (_, members) = server
        .get(&format!("/v1/groups/{g}/members"), c.teacher.auth())
        .await;
    let alice = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == c.alice.id)
        .unwrap()
        .clone();
    assert_eq!(
        (alice["role"].clone(), alice["muted_until"].clone()),
        (json!("member"), Value::Null)
    );
}
