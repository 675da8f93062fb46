//! Groups and their members: who may do what.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::*;
use serde_json::{json, Value};

/// Ava (owner of a fresh group), Mike (member of it) and Zed (not a member).
struct Cast {
    ava: Session,
    mike: Session,
    zed: Session,
    group: i64,
}

async fn cast(server: &TestServer) -> Cast {
    let ava = server.ava().await;
    let mike = server.mike().await;
    let zed = server.new_user("zed").await;
    let group = server.create_group(&ava, "Book club", &[mike.id]).await;
    Cast {
        ava,
        mike,
        zed,
        group,
    }
}

async fn roles(api: &Api, by: &Session, group: i64) -> BTreeMap<i64, String> {
    let (status, members) = api
        .get(&format!("/v1/groups/{group}/members"), by.auth())
        .await;
    assert_eq!(status, 200, "{members}");
    members
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn group_ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect()
}

fn missing_group_id(existing: i64) -> i64 {
    existing + 10_000
}

#[track_caller]
fn assert_member_shape(m: &Value) {
    for key in [
        "id",
        "username",
        "display_name",
        "role",
        "joined_at",
        "online",
    ] {
        assert!(m.get(key).is_some(), "member lacks `{key}`: {m}");
    }
    assert!(m.get("email").is_none(), "member leaks email: {m}");
    assert_timestamp(&m["joined_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_the_caller_owner_and_adds_member_ids() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;

    let (status, group) = server
        .post_json(
            "/v1/groups",
            ava.auth(),
            &json!({"name": "  Book club  ", "member_ids": [mike.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    for key in ["id", "kind", "name", "owner_id", "created_at", "role"] {
        assert!(group.get(key).is_some(), "group lacks `{key}`: {group}");
    }
    assert_eq!(group["kind"], "group");
    assert_eq!(group["name"], "Book club", "name is trimmed");
    assert_eq!(group["owner_id"], ava.id);
    assert_eq!(group["role"], "owner");
    assert_timestamp(&group["created_at"]);
    let id = group["id"].as_i64().unwrap();

    let (status, full) = server.get(&format!("/v1/groups/{id}"), mike.auth()).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["role"], "member", "role is the caller's");
    let members = full["members"].as_array().expect("members");
    members.iter().for_each(assert_member_shape);
    assert_eq!(
        roles(&server, &mike, id).await,
        BTreeMap::from([
            (ava.id, "owner".to_string()),
            (mike.id, "member".to_string())
        ])
    );

    // Without member_ids; the caller listed in member_ids is not a duplicate error.
    let solo = server.create_group(&ava, "Solo", &[]).await;
    assert_eq!(
        roles(&server, &ava, solo).await,
        BTreeMap::from([(ava.id, "owner".to_string())])
    );
    let (status, body) = server
        .post_json(
            "/v1/groups",
            ava.auth(),
            &json!({"name": "Self-listed", "member_ids": [ava.id]}),
        )
        .await;
    assert!(
        status == 201 || status == 400 || status == 409,
        "{status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_names_are_validated() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    server.create_group(&ava, &"n".repeat(100), &[]).await;
    for name in [String::new(), "   ".into(), "n".repeat(101)] {
        let got = server
            .post_json("/v1/groups", ava.auth(), &json!({"name": name}))
            .await;
        assert_error(&got, 400, "invalid_name");
    }
    assert_error(
        &server
            .post_json("/v1/groups", None, &json!({"name": "x"}))
            .await,
        401,
        "unauthorized",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_no_group_behind() {
    let server = TestServer::start().await;
    let ava = server.ava().await;
    let mike = server.mike().await;
    let (_, before) = server.get("/v1/groups", ava.auth()).await;

    let unknown = mike.id.max(ava.id) + 1000;
    let got = server
        .post_json(
            "/v1/groups",
            ava.auth(),
            &json!({"name": "Ghost", "member_ids": [mike.id, unknown]}),
        )
        .await;
    assert_error(&got, 404, "not_found");

    let (_, after) = server.get("/v1/groups", ava.auth()).await;
    assert_eq!(
        group_ids(&after),
        group_ids(&before),
        "Ava's groups changed: {after}"
    );
    let (_, mikes) = server.get("/v1/groups", mike.auth()).await;
    assert!(
        mikes
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["name"] != "Ghost"),
        "Mike was added to a group that should not exist: {mikes}"
    );
    // The next group gets created normally and is the only new one.
    let next = server.create_group(&ava, "Real", &[mike.id]).await;
    let (_, after) = server.get("/v1/groups", ava.auth()).await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1
    );
    assert!(group_ids(&after).contains(&next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_my_groups_most_recent_activity_first() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group: book_club,
    } = cast(&server).await;
    let chess = server.create_group(&ava, "Chess", &[mike.id]).await;

    let (status, zeds) = server.get("/v1/groups", zed.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(zeds, json!([]), "Zed is in no group");

    server.send(&ava, book_club, "first in book club").await;
    server.send(&ava, chess, "chess move").await;
    let latest = server.send(&ava, book_club, "latest in book club").await;

    let (status, list) = server.get("/v1/groups", mike.auth()).await;
    assert_eq!(status, 200, "{list}");
    let order = group_ids(&list);
    assert_eq!(
        order.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([GENERAL, book_club, chess])
    );
    assert_eq!(
        &order[..2],
        &[book_club, chess],
        "most recent activity first: {list}"
    );
    let first = &list[0];
    assert_eq!(first["last_message"]["id"], latest["id"], "{first}");
    assert_eq!(first["last_message"]["content"], "latest in book club");
    assert_eq!(
        first["unread_count"], 2,
        "Mike has read nothing in Book club: {first}"
    );
    for g in list.as_array().unwrap() {
        assert!(
            g.get("last_message").is_some() && g["unread_count"].is_i64(),
            "{g}"
        );
    }

    // Activity in General moves it to the top.
    server.send(&mike, GENERAL, "hello everyone").await;
    let (_, list) = server.get("/v1/groups", ava.auth()).await;
    assert_eq!(group_ids(&list)[0], GENERAL, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_get_403_and_missing_groups_404() {
    let server = TestServer::start().await;
    let Cast {
        ava, zed, group, ..
    } = cast(&server).await;
    let missing = missing_group_id(group);

    let reqs: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/groups/{G}".to_string(), None),
        (
            "PATCH",
            "/v1/groups/{G}".to_string(),
            Some(json!({"name": "Mine now"})),
        ),
        ("DELETE", "/v1/groups/{G}".to_string(), None),
        ("GET", "/v1/groups/{G}/members".to_string(), None),
        (
            "POST",
            "/v1/groups/{G}/members".to_string(),
            Some(json!({"user_id": zed.id})),
        ),
        (
            "DELETE",
            format!("/v1/groups/{{G}}/members/{}", ava.id),
            None,
        ),
        ("GET", "/v1/messages/group/{G}".to_string(), None),
        (
            "POST",
            "/v1/messages/group/{G}".to_string(),
            Some(json!({"content": "let me in"})),
        ),
    ];
    for (method, template, body) in reqs {
        for (target, status, code) in [(group, 403, "forbidden"), (missing, 404, "not_found")] {
            let path = template.replace("{G}", &target.to_string());
            let method: reqwest::Method = method.parse().unwrap();
            let got = server
                .request(method.clone(), &path, zed.auth(), body.as_ref())
                .await;
            assert!(got.0 == status, "{method} {path} as non-member: {got:?}");
            assert_error(&got, status, code);
        }
    }
    // Nothing changed.
    let (status, g) = server.get(&format!("/v1/groups/{group}"), ava.auth()).await;
    assert_eq!(status, 200);
    assert_eq!(g["name"], "Book club");
    assert_error(
        &server.get("/v1/groups/abc", ava.auth()).await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_by_owner_or_admin_not_member() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group,
    } = cast(&server).await;
    server.add_member(&ava, group, zed.id, Some("admin")).await;

    let (status, g) = server
        .patch(
            &format!("/v1/groups/{group}"),
            ava.auth(),
            &json!({"name": "Owners' pick"}),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["name"], "Owners' pick");
    assert_eq!(g["id"], group);

    let (status, g) = server
        .patch(
            &format!("/v1/groups/{group}"),
            zed.auth(),
            &json!({"name": " Admin's pick "}),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["name"], "Admin's pick");

    let got = server
        .patch(
            &format!("/v1/groups/{group}"),
            mike.auth(),
            &json!({"name": "Mike's"}),
        )
        .await;
    assert_error(&got, 403, "forbidden");
    let got = server
        .patch(
            &format!("/v1/groups/{group}"),
            ava.auth(),
            &json!({"name": "  "}),
        )
        .await;
    assert_error(&got, 400, "invalid_name");

    let (_, g) = server
        .get(&format!("/v1/groups/{group}"), mike.auth())
        .await;
    assert_eq!(g["name"], "Admin's pick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_for_the_owner_only() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group,
    } = cast(&server).await;
    server.add_member(&ava, group, zed.id, Some("admin")).await;
    server.send(&mike, group, "soon gone").await;

    assert_error(
        &server
            .delete(&format!("/v1/groups/{group}"), zed.auth())
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &server
            .delete(&format!("/v1/groups/{group}"), mike.auth())
            .await,
        403,
        "forbidden",
    );

    let (status, body) = server
        .delete(&format!("/v1/groups/{group}"), ava.auth())
        .await;
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server.get(&format!("/v1/groups/{group}"), ava.auth()).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/v1/messages/group/{group}"), mike.auth())
            .await,
        404,
        "not_found",
    );
    let (_, list) = server.get("/v1/groups", mike.auth()).await;
    assert!(!group_ids(&list).contains(&group), "{list}");
    assert_error(
        &server
            .delete(&format!("/v1/groups/{group}"), ava.auth())
            .await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_members() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group,
    } = cast(&server).await;
    let yan = server.new_user("yan").await;
    let xia = server.new_user("xia").await;

    // Owner adds an admin.
    let (status, member) = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            ava.auth(),
            &json!({"user_id": zed.id, "role": "admin"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert_member_shape(&member);
    assert_eq!(member["id"], zed.id);
    assert_eq!(member["username"], "zed");
    assert_eq!(member["role"], "admin");

    // Admin adds a member; the role defaults to member.
    let (status, member) = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            zed.auth(),
            &json!({"user_id": yan.id}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(member["role"], "member");

    // A plain member may not add.
    let got = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            mike.auth(),
            &json!({"user_id": xia.id}),
        )
        .await;
    assert_error(&got, 403, "forbidden");

    // Duplicates, unknown users, bad roles.
    let got = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            ava.auth(),
            &json!({"user_id": mike.id}),
        )
        .await;
    assert_error(&got, 409, "conflict");
    let unknown = xia.id + 1000;
    let got = server
        .post_json(
            &format!("/v1/groups/{group}/members"),
            ava.auth(),
            &json!({"user_id": unknown}),
        )
        .await;
    assert_error(&got, 404, "not_found");
    for role in ["owner", "superuser", ""] {
        let got = server
            .post_json(
                &format!("/v1/groups/{group}/members"),
                ava.auth(),
                &json!({"user_id": xia.id, "role": role}),
            )
            .await;
        assert_error(&got, 400, "invalid_role");
    }

    assert_eq!(
        roles(&server, &mike, group).await,
        BTreeMap::from([
            (ava.id, "owner".to_string()),
            (mike.id, "member".to_string()),
            (zed.id, "admin".to_string()),
            (yan.id, "member".to_string()),
        ])
    );
    let (_, members) = server
        .get(&format!("/v1/groups/{group}/members"), yan.auth())
        .await;
    members
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_member_shape);

    // The new member sees the group.
    let (_, list) = server.get("/v1/groups", yan.auth()).await;
    assert!(group_ids(&list).contains(&group));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_members_and_leaving() {
    let server = TestServer::start().await;
    let Cast {
        ava,
        mike,
        zed,
        group,
    } = cast(&server).await;
    let yan = server.new_user("yan").await;
    let xia = server.new_user("xia").await;
    server.add_member(&ava, group, zed.id, Some("admin")).await;
    server.add_member(&ava, group, yan.id, None).await;
    server.add_member(&ava, group, xia.id, None).await;
    let path = |user: i64| format!("/v1/groups/{group}/members/{user}");

    // Nobody removes the owner; a member removes nobody else.
    assert_error(
        &server.delete(&path(ava.id), zed.auth()).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete(&path(ava.id), ava.auth()).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete(&path(yan.id), mike.auth()).await,
        403,
        "forbidden",
    );
    assert_error(
        &server.delete(&path(zed.id), mike.auth()).await,
        403,
        "forbidden",
    );

    // Admin removes a member.
    let (status, body) = server.delete(&path(yan.id), zed.auth()).await;
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server.get(&format!("/v1/groups/{group}"), yan.auth()).await,
        403,
        "forbidden",
    );
    // Removing a non-member.
    assert_error(
        &server.delete(&path(yan.id), ava.auth()).await,
        404,
        "not_found",
    );

    // A member leaves.
    let (status, body) = server.delete(&path(mike.id), mike.auth()).await;
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server
            .get(&format!("/v1/groups/{group}"), mike.auth())
            .await,
        403,
        "forbidden",
    );

    // Owner removes the admin.
    let (status, body) = server.delete(&path(zed.id), ava.auth()).await;
    assert_eq!(status, 204, "{body}");

    assert_eq!(
        roles(&server, &ava, group).await,
        BTreeMap::from([
            (ava.id, "owner".to_string()),
            (xia.id, "member".to_string())
        ])
    );
    assert_error(
        &server.delete(&path(ava.id + 10_000), ava.auth()).await,
        404,
        "not_found",
    );
}

/// The writer keeps who may post in memory between sends (`store::rules`): each change to a
/// membership or to a group's posting rule is seen by the very next send, whoever made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_send_sees_every_change_of_who_may_post() {
    let server = TestServer::start().await;
    let Cast {
        ava, mike, group, ..
    } = cast(&server).await;
    let try_send = |who: &Session| {
        let (server, auth) = (&server, who.auth().map(str::to_string));
        async move {
            server
                .post_json(
                    &format!("/v1/messages/group/{group}"),
                    auth.as_deref(),
                    &json!({"content": "still here?"}),
                )
                .await
        }
    };
    let member = format!("/v1/groups/{group}/members/{}", mike.id);
    let posting = |rule: &str| json!({ "posting": rule });

    assert_eq!(try_send(&mike).await.0, 201);
    // Removed by the owner: refused at once; added back: allowed at once.
    assert_eq!(server.delete(&member, ava.auth()).await.0, 204);
    assert_error(&try_send(&mike).await, 403, "forbidden");
    server.add_member(&ava, group, mike.id, None).await;
    assert_eq!(try_send(&mike).await.0, 201);
    // Only admins post, then everyone again.
    let path = format!("/v1/groups/{group}");
    let (status, body) = server.patch(&path, ava.auth(), &posting("admins")).await;
    assert_eq!(status, 200, "{body}");
    assert_error(&try_send(&mike).await, 403, "read_only");
    assert_eq!(try_send(&ava).await.0, 201, "the owner still posts");
    let (status, body) = server.patch(&path, ava.auth(), &posting("everyone")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(try_send(&mike).await.0, 201);
    // He leaves of his own accord.
    assert_eq!(server.delete(&member, mike.auth()).await.0, 204);
    assert_error(&try_send(&mike).await, 403, "forbidden");
    // The group is deleted: nobody posts in it.
    assert_eq!(server.delete(&path, ava.auth()).await.0, 204);
    assert_error(&try_send(&ava).await, 404, "not_found");
}
