//! The authorisation matrix: every route the server serves × {anonymous, stranger, member,
//! admin, owner}, with the status each must get. The table is checked against the router's own
//! route list (`Server::routes()`), so a new route without a row fails here. Nothing answers 500,
//! and every error is the contract's `{"error", "code"}` body.
//!
//! One group holds the roles (owner, admin, member; the stranger is in no shared conversation).
//! Rows marked "(direct)" target the direct conversation of the owner and the member: there the
//! owner and the member are its two participants, and the admin and the stranger are outsiders.
//! Requests that destroy something (delete a group, remove a member, delete a message) get a fresh
//! one per cell, so every cell starts from the same state.

use std::collections::BTreeSet;

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Anonymous,
    Stranger,
    Member,
    Admin,
    Owner,
}

const ROLES: [Role; 5] = [
    Role::Anonymous,
    Role::Stranger,
    Role::Member,
    Role::Admin,
    Role::Owner,
];

/// One cell's request, built per role (and per cell where a fresh resource is needed).
#[derive(Clone, Copy, Debug)]
enum Case {
    Healthz,
    OpenApi,
    Docs,
    Metrics,
    Index,
    AppJs,
    /// A file of the web client, by its path.
    Static(&'static str),
    StyleCss,
    DocsJs,
    DocsCss,
    Welcome,
    Block,
    Unblock,
    ListBlocks,
    TestAuth,
    Register,
    Login,
    Refresh,
    Logout,
    Me,
    PatchMe,
    PutPassword,
    ListUsers,
    GetUser,
    MissingUser,
    CreateGroup,
    ListGroups,
    GetGroup,
    MissingGroup,
    PatchGroup,
    DeleteGroup,
    AddMember,
    ListMembers,
    MuteMember,
    MuteAdmin,
    MuteOwner,
    RemoveOtherMember,
    RemoveSelf,
    RemoveOwner,
    MarkRead,
    OpenDirect,
    PostGroupMessage,
    GetGroupMessages,
    PostDirectMessage,
    GetDirectMessages,
    EditOwnMessage,
    DeleteOwnersMessage,
    DeleteMembersMessage,
    MissingMessage,
    Search,
    SearchInGroup,
    WebSocket,
    // The direct conversation of the owner and the member, through the group routes.
    DirectGet,
    DirectPatch,
    DirectDelete,
    DirectAddMember,
    DirectListMembers,
    DirectRemoveSelf,
    DirectMute,
    DirectMarkRead,
    DirectPost,
    DirectHistory,
    DirectEdit,
    DirectDeleteMessage,
    DirectSearch,
    Upload,
    /// The owner's image, sent to the group.
    GetAttachment,
    /// The owner's upload, sent nowhere: only the uploader may fetch it.
    GetUnsentAttachment,
    /// The owner's upload, sent in the direct conversation.
    GetDirectAttachment,
    MissingAttachment,
    Thumbnail,
    /// A text file has no thumbnail.
    TextThumbnail,
    React,
    Unreact,
    ReactInvalid,
    DirectReact,
}

/// method, route (as the router names it), case, expected [anonymous, stranger, member, admin, owner].
type Row = (&'static str, &'static str, Case, [u16; 5]);

const PUBLIC_200: [u16; 5] = [200; 5];
const ANY_USER_200: [u16; 5] = [401, 200, 200, 200, 200];
const ANY_USER_201: [u16; 5] = [401, 201, 201, 201, 201];
const MEMBERS_200: [u16; 5] = [401, 403, 200, 200, 200];

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // --- public ---
    ("GET", "/healthz", Case::Healthz, PUBLIC_200),
    ("GET", "/openapi.json", Case::OpenApi, PUBLIC_200),
    ("GET", "/docs", Case::Docs, PUBLIC_200),
    ("GET", "/metrics", Case::Metrics, PUBLIC_200),
    ("GET", "/", Case::Index, PUBLIC_200),
    ("GET", "/app.js", Case::AppJs, PUBLIC_200),
    ("GET", "/style.css", Case::StyleCss, PUBLIC_200),
    ("GET", "/docs.js", Case::DocsJs, PUBLIC_200),
    ("GET", "/docs.css", Case::DocsCss, PUBLIC_200),
    ("GET", "/favicon.ico", Case::Static("/favicon.ico"), PUBLIC_200),
    ("GET", "/docs/API.md", Case::Static("/docs/API.md"), PUBLIC_200),
    ("GET", "/js/state.js", Case::Static("/js/state.js"), PUBLIC_200),
    ("GET", "/js/api.js", Case::Static("/js/api.js"), PUBLIC_200),
    ("GET", "/js/dom.js", Case::Static("/js/dom.js"), PUBLIC_200),
    ("GET", "/js/socket.js", Case::Static("/js/socket.js"), PUBLIC_200),
    ("GET", "/js/list.js", Case::Static("/js/list.js"), PUBLIC_200),
    ("GET", "/js/chat.js", Case::Static("/js/chat.js"), PUBLIC_200),
    ("GET", "/js/messages.js", Case::Static("/js/messages.js"), PUBLIC_200),
    ("GET", "/js/composer.js", Case::Static("/js/composer.js"), PUBLIC_200),
    ("GET", "/js/picker.js", Case::Static("/js/picker.js"), PUBLIC_200),
    ("GET", "/js/people.js", Case::Static("/js/people.js"), PUBLIC_200),
    ("GET", "/js/settings.js", Case::Static("/js/settings.js"), PUBLIC_200),
    ("GET", "/js/login.js", Case::Static("/js/login.js"), PUBLIC_200),
    ("GET", "/js/attachments.js", Case::Static("/js/attachments.js"), PUBLIC_200),
    ("GET", "/js/uploads.js", Case::Static("/js/uploads.js"), PUBLIC_200),
    ("GET", "/js/replies.js", Case::Static("/js/replies.js"), PUBLIC_200),
    ("GET", "/js/reactions.js", Case::Static("/js/reactions.js"), PUBLIC_200),
    ("GET", "/js/mentions.js", Case::Static("/js/mentions.js"), PUBLIC_200),
    ("GET", "/v1/welcome", Case::Welcome, PUBLIC_200),
    ("POST", "/v1/users/register", Case::Register, [201; 5]),
    ("POST", "/v1/users/login", Case::Login, PUBLIC_200),
    ("POST", "/v1/auth/refresh", Case::Refresh, PUBLIC_200),
    // --- accounts ---
    ("POST", "/v1/auth/logout", Case::Logout, [401, 204, 204, 204, 204]),
    ("GET", "/v1/test-auth", Case::TestAuth, ANY_USER_200),
    ("GET", "/v1/me", Case::Me, ANY_USER_200),
    ("PATCH", "/v1/me", Case::PatchMe, ANY_USER_200),
    ("PUT", "/v1/me/password", Case::PutPassword, [401, 204, 204, 204, 204]),
    ("GET", "/v1/users", Case::ListUsers, ANY_USER_200),
    ("GET", "/v1/users/{id}", Case::GetUser, ANY_USER_200),
    ("GET", "/v1/users/{id}", Case::MissingUser, [401, 404, 404, 404, 404]),
    ("PUT", "/v1/me/blocks/{user_id}", Case::Block, [401, 204, 204, 204, 204]),
    ("GET", "/v1/me/blocks", Case::ListBlocks, ANY_USER_200),
    ("DELETE", "/v1/me/blocks/{user_id}", Case::Unblock, [401, 204, 204, 204, 204]),
    // --- groups ---
    ("POST", "/v1/groups", Case::CreateGroup, ANY_USER_201),
    ("GET", "/v1/groups", Case::ListGroups, ANY_USER_200),
    ("GET", "/v1/groups/{id}", Case::GetGroup, MEMBERS_200),
    ("GET", "/v1/groups/{id}", Case::MissingGroup, [401, 404, 404, 404, 404]),
    ("PATCH", "/v1/groups/{id}", Case::PatchGroup, [401, 403, 403, 200, 200]),
    ("DELETE", "/v1/groups/{id}", Case::DeleteGroup, [401, 403, 403, 403, 204]),
    ("POST", "/v1/groups/{id}/members", Case::AddMember, [401, 403, 403, 201, 201]),
    ("GET", "/v1/groups/{id}/members", Case::ListMembers, MEMBERS_200),
    ("PATCH", "/v1/groups/{id}/members/{user_id}", Case::MuteMember, [401, 403, 403, 200, 200]),
    ("PATCH", "/v1/groups/{id}/members/{user_id}", Case::MuteAdmin, [401, 403, 403, 403, 200]),
    ("PATCH", "/v1/groups/{id}/members/{user_id}", Case::MuteOwner, [401, 403, 403, 403, 403]),
    ("DELETE", "/v1/groups/{id}/members/{user_id}", Case::RemoveOtherMember, [401, 403, 403, 204, 204]),
    ("DELETE", "/v1/groups/{id}/members/{user_id}", Case::RemoveSelf, [401, 403, 204, 204, 403]),
    ("DELETE", "/v1/groups/{id}/members/{user_id}", Case::RemoveOwner, [401, 403, 403, 403, 403]),
    ("POST", "/v1/groups/{id}/read", Case::MarkRead, [401, 403, 204, 204, 204]),
    ("POST", "/v1/direct/{user_id}", Case::OpenDirect, ANY_USER_201),
    // --- messages ---
    ("POST", "/v1/messages/group/{id}", Case::PostGroupMessage, [401, 403, 201, 201, 201]),
    ("GET", "/v1/messages/group/{id}", Case::GetGroupMessages, MEMBERS_200),
    ("POST", "/v1/messages/direct/{user_id}", Case::PostDirectMessage, ANY_USER_201),
    ("GET", "/v1/messages/direct/{user_id}", Case::GetDirectMessages, ANY_USER_200),
    ("PATCH", "/v1/messages/{id}", Case::EditOwnMessage, [401, 403, 403, 403, 200]),
    ("DELETE", "/v1/messages/{id}", Case::DeleteOwnersMessage, [401, 403, 403, 204, 204]),
    ("DELETE", "/v1/messages/{id}", Case::DeleteMembersMessage, [401, 403, 204, 204, 204]),
    ("DELETE", "/v1/messages/{id}", Case::MissingMessage, [401, 404, 404, 404, 404]),
    ("GET", "/v1/messages/search", Case::Search, ANY_USER_200),
    ("GET", "/v1/messages/search", Case::SearchInGroup, MEMBERS_200),
    // --- socket (101: the upgrade is accepted) ---
    ("GET", "/ws", Case::WebSocket, [401, 101, 101, 101, 101]),
    // --- the direct conversation of owner and member (admin and stranger are outsiders) ---
    ("GET", "/v1/groups/{id}", Case::DirectGet, [401, 403, 200, 403, 200]),
    ("PATCH", "/v1/groups/{id}", Case::DirectPatch, [401, 403, 403, 403, 403]),
    ("DELETE", "/v1/groups/{id}", Case::DirectDelete, [401, 403, 403, 403, 403]),
    ("POST", "/v1/groups/{id}/members", Case::DirectAddMember, [401, 403, 403, 403, 403]),
    ("GET", "/v1/groups/{id}/members", Case::DirectListMembers, [401, 403, 200, 403, 200]),
    ("PATCH", "/v1/groups/{id}/members/{user_id}", Case::DirectMute, [401, 403, 403, 403, 403]),
    ("DELETE", "/v1/groups/{id}/members/{user_id}", Case::DirectRemoveSelf, [401, 403, 403, 403, 403]),
    ("POST", "/v1/groups/{id}/read", Case::DirectMarkRead, [401, 403, 204, 403, 204]),
    ("POST", "/v1/messages/group/{id}", Case::DirectPost, [401, 403, 201, 403, 201]),
    ("GET", "/v1/messages/group/{id}", Case::DirectHistory, [401, 403, 200, 403, 200]),
    ("PATCH", "/v1/messages/{id}", Case::DirectEdit, [401, 403, 403, 403, 200]),
    ("DELETE", "/v1/messages/{id}", Case::DirectDeleteMessage, [401, 403, 403, 403, 204]),
    ("GET", "/v1/messages/search", Case::DirectSearch, [401, 403, 200, 403, 200]),
    ("PUT", "/v1/messages/{id}/reactions/{emoji}", Case::DirectReact, [401, 403, 204, 403, 204]),
    ("GET", "/v1/attachments/{id}", Case::GetDirectAttachment, [401, 403, 200, 403, 200]),
    // --- attachments and reactions ---
    ("POST", "/v1/attachments", Case::Upload, ANY_USER_201),
    ("GET", "/v1/attachments/{id}", Case::GetAttachment, MEMBERS_200),
    ("GET", "/v1/attachments/{id}", Case::GetUnsentAttachment, [401, 403, 403, 403, 200]),
    ("GET", "/v1/attachments/{id}", Case::MissingAttachment, [401, 404, 404, 404, 404]),
    ("GET", "/v1/attachments/{id}/thumbnail", Case::Thumbnail, MEMBERS_200),
    ("GET", "/v1/attachments/{id}/thumbnail", Case::TextThumbnail, [401, 403, 404, 404, 404]),
    ("PUT", "/v1/messages/{id}/reactions/{emoji}", Case::React, [401, 403, 204, 204, 204]),
    ("PUT", "/v1/messages/{id}/reactions/{emoji}", Case::ReactInvalid, [401, 400, 400, 400, 400]),
    ("DELETE", "/v1/messages/{id}/reactions/{emoji}", Case::Unreact, [401, 403, 204, 204, 204]),
];

/// The cast and the things they act on.
struct Fixture {
    owner: Session,
    admin: Session,
    member: Session,
    stranger: Session,
    /// A plain member of every fresh group, for "remove another member".
    extra: Session,
    /// Nobody has a direct conversation with them: `POST /v1/direct/{peer}` creates one per cell.
    peer: Session,
    /// The target of the direct-message routes.
    peer2: Session,
    /// Whom the block routes block: nobody else deals with them.
    loner: Session,
    group: i64,
    owner_message: i64,
    direct: i64,
    direct_message: i64,
    image: i64,
    text_file: i64,
    unsent: i64,
    direct_file: i64,
}

impl Fixture {
    async fn new(api: &Api) -> Fixture {
        let owner = api.new_user("owner").await;
        let admin = api.new_user("admin").await;
        let member = api.new_user("member").await;
        let stranger = api.new_user("stranger").await;
        let extra = api.new_user("extra").await;
        let peer = api.new_user("peer").await;
        let peer2 = api.new_user("peer2").await;
        let loner = api.new_user("loner").await;
        let mut fx = Fixture {
            owner,
            admin,
            member,
            stranger,
            extra,
            peer,
            peer2,
            loner,
            group: 0,
            owner_message: 0,
            direct: 0,
            direct_message: 0,
            image: 0,
            text_file: 0,
            unsent: 0,
            direct_file: 0,
        };
        fx.group = fx.roles_group(api, "Matrix").await;
        fx.owner_message = message_id(&api.send(&fx.owner, fx.group, "hello from the owner").await);
        fx.direct = api.direct_id(&fx.owner, fx.member.id).await;
        fx.direct_message = message_id(
            &api.send_direct(&fx.owner, fx.member.id, "hello direct")
                .await,
        );
        let upload = |name: &'static str, bytes: Vec<u8>| {
            let owner = fx.owner.clone();
            async move {
                api.upload(&owner, name, bytes).await["id"]
                    .as_i64()
                    .unwrap()
            }
        };
        fx.image = upload("photo.png", png(40, 30)).await;
        fx.text_file = upload("notes.txt", b"some notes".to_vec()).await;
        fx.unsent = upload("draft.txt", b"not sent".to_vec()).await;
        fx.direct_file = upload("secret.txt", b"for the member".to_vec()).await;
        let ids = json!({"content": "files", "attachment_ids": [fx.image, fx.text_file]});
        assert_eq!(api.send_body(&fx.owner, fx.group, &ids).await.0, 201);
        let ids = json!({"content": "a file", "attachment_ids": [fx.direct_file]});
        assert_eq!(api.send_body(&fx.owner, fx.direct, &ids).await.0, 201);
        fx
    }

    /// A group owned by `owner` with `admin` as admin and `member` and `extra` as members.
    async fn roles_group(&self, api: &Api, name: &str) -> i64 {
        let group = api
            .create_group(&self.owner, name, &[self.member.id, self.extra.id])
            .await;
        api.add_member(&self.owner, group, self.admin.id, Some("admin"))
            .await;
        group
    }

    /// A changed password ends every session of its user: the role signs in again.
    async fn sign_in_again(&mut self, api: &Api, role: Role) {
        let slot = match role {
            Role::Anonymous => return,
            Role::Stranger => &mut self.stranger,
            Role::Member => &mut self.member,
            Role::Admin => &mut self.admin,
            Role::Owner => &mut self.owner,
        };
        *slot = api.session(&slot.username.clone(), PASSWORD).await;
    }

    fn session(&self, role: Role) -> Option<&Session> {
        match role {
            Role::Anonymous => None,
            Role::Stranger => Some(&self.stranger),
            Role::Member => Some(&self.member),
            Role::Admin => Some(&self.admin),
            Role::Owner => Some(&self.owner),
        }
    }

    /// The role's user, or the owner for the anonymous caller (where a request needs a user:
    /// the anonymous caller presents the owner's ids without the owner's token).
    fn acting(&self, role: Role) -> &Session {
        self.session(role).unwrap_or(&self.owner)
    }
}

fn message_id(m: &Value) -> i64 {
    m["id"].as_i64().expect("message id")
}

struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
}

/// Mutes `user` in `group` until a moment already past, so it changes what the row checks
/// (who may mute whom) and nothing the later rows rely on.
fn mute(group: i64, user: i64) -> Request {
    req(
        Method::PATCH,
        format!("/v1/groups/{group}/members/{user}"),
        Some(json!({"muted_until": "2000-01-01T00:00:00Z"})),
    )
}

fn req(method: Method, path: impl Into<String>, body: Option<Value>) -> Request {
    Request {
        method,
        path: path.into(),
        body,
    }
}

/// Builds the request of `case` for `role`; `cell` numbers the cell, for unique names.
async fn build(api: &Api, fx: &Fixture, case: Case, role: Role, cell: usize) -> Request {
    use Method as M;
    let me = fx.acting(role);
    let g = fx.group;
    let d = fx.direct;
    match case {
        Case::Healthz => req(M::GET, "/healthz", None),
        Case::OpenApi => req(M::GET, "/openapi.json", None),
        Case::Docs => req(M::GET, "/docs", None),
        Case::Metrics => req(M::GET, "/metrics", None),
        Case::Index => req(M::GET, "/", None),
        Case::AppJs => req(M::GET, "/app.js", None),
        Case::StyleCss => req(M::GET, "/style.css", None),
        Case::DocsJs => req(M::GET, "/docs.js", None),
        Case::DocsCss => req(M::GET, "/docs.css", None),
        Case::Static(path) => req(M::GET, path, None),
        Case::Welcome => req(M::GET, "/v1/welcome", None),
        Case::Block => req(M::PUT, format!("/v1/me/blocks/{}", fx.loner.id), None),
        Case::ListBlocks => req(M::GET, "/v1/me/blocks", None),
        Case::Unblock => req(M::DELETE, format!("/v1/me/blocks/{}", fx.loner.id), None),
        Case::TestAuth => req(M::GET, "/v1/test-auth", None),
        Case::Register => {
            let name = format!("newcomer{cell}");
            let body = json!({"username": name, "email": format!("{name}@example.test"), "password": PASSWORD});
            req(M::POST, "/v1/users/register", Some(body))
        }
        Case::Login => {
            let body = json!({"username": me.username, "password": PASSWORD});
            req(M::POST, "/v1/users/login", Some(body))
        }
        Case::Refresh => {
            let fresh = api.session(&me.username, PASSWORD).await;
            let body = json!({"refresh_token": fresh.refresh});
            req(M::POST, "/v1/auth/refresh", Some(body))
        }
        Case::Logout => {
            let fresh = api.session(&me.username, PASSWORD).await;
            let body = json!({"refresh_token": fresh.refresh});
            req(M::POST, "/v1/auth/logout", Some(body))
        }
        Case::Me => req(M::GET, "/v1/me", None),
        Case::PatchMe => req(
            M::PATCH,
            "/v1/me",
            Some(json!({"display_name": format!("Cell {cell}")})),
        ),
        // The same password again: the account stays usable for the following rows.
        Case::PutPassword => req(
            M::PUT,
            "/v1/me/password",
            Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
        ),
        Case::ListUsers => req(M::GET, "/v1/users?q=o&limit=5&offset=0", None),
        Case::GetUser => req(M::GET, format!("/v1/users/{}", fx.owner.id), None),
        Case::MissingUser => req(M::GET, "/v1/users/987654321", None),
        Case::CreateGroup => req(
            M::POST,
            "/v1/groups",
            Some(json!({"name": format!("Created in cell {cell}")})),
        ),
        Case::ListGroups => req(M::GET, "/v1/groups", None),
        Case::GetGroup => req(M::GET, format!("/v1/groups/{g}"), None),
        Case::MissingGroup => req(M::GET, "/v1/groups/987654321", None),
        Case::PatchGroup => req(
            M::PATCH,
            format!("/v1/groups/{g}"),
            Some(json!({"name": format!("Renamed in cell {cell}")})),
        ),
        Case::DeleteGroup => {
            let fresh = fx.roles_group(api, &format!("Doomed {cell}")).await;
            req(M::DELETE, format!("/v1/groups/{fresh}"), None)
        }
        Case::AddMember => {
            let newcomer = api.new_user(&format!("candidate{cell}")).await;
            let body = json!({"user_id": newcomer.id});
            req(M::POST, format!("/v1/groups/{g}/members"), Some(body))
        }
        Case::ListMembers => req(M::GET, format!("/v1/groups/{g}/members"), None),
        // Muted into the past: the member can still post in the rows that follow.
        Case::MuteMember => mute(g, fx.extra.id),
        Case::MuteAdmin => mute(g, fx.admin.id),
        Case::MuteOwner => mute(g, fx.owner.id),
        Case::DirectMute => mute(fx.direct, fx.member.id),
        Case::RemoveOtherMember => {
            let fresh = fx.roles_group(api, &format!("Shrinking {cell}")).await;
            req(
                M::DELETE,
                format!("/v1/groups/{fresh}/members/{}", fx.extra.id),
                None,
            )
        }
        Case::RemoveSelf => {
            let fresh = fx.roles_group(api, &format!("Leaving {cell}")).await;
            req(
                M::DELETE,
                format!("/v1/groups/{fresh}/members/{}", me.id),
                None,
            )
        }
        Case::RemoveOwner => {
            let fresh = fx.roles_group(api, &format!("Coup {cell}")).await;
            req(
                M::DELETE,
                format!("/v1/groups/{fresh}/members/{}", fx.owner.id),
                None,
            )
        }
        Case::MarkRead => req(
            M::POST,
            format!("/v1/groups/{g}/read"),
            Some(json!({"message_id": fx.owner_message})),
        ),
        Case::OpenDirect => req(M::POST, format!("/v1/direct/{}", fx.peer.id), None),
        Case::PostGroupMessage => req(
            M::POST,
            format!("/v1/messages/group/{g}"),
            Some(json!({"content": format!("cell {cell}")})),
        ),
        Case::GetGroupMessages => req(M::GET, format!("/v1/messages/group/{g}?limit=10"), None),
        Case::PostDirectMessage => req(
            M::POST,
            format!("/v1/messages/direct/{}", fx.peer2.id),
            Some(json!({"content": format!("direct cell {cell}")})),
        ),
        Case::GetDirectMessages => req(
            M::GET,
            format!("/v1/messages/direct/{}?limit=10", fx.peer2.id),
            None,
        ),
        Case::EditOwnMessage => req(
            M::PATCH,
            format!("/v1/messages/{}", fx.owner_message),
            Some(json!({"content": format!("edited in cell {cell}")})),
        ),
        Case::DeleteOwnersMessage => {
            let m = api.send(&fx.owner, g, &format!("to delete {cell}")).await;
            req(M::DELETE, format!("/v1/messages/{}", message_id(&m)), None)
        }
        Case::DeleteMembersMessage => {
            let m = api.send(&fx.member, g, &format!("to delete {cell}")).await;
            req(M::DELETE, format!("/v1/messages/{}", message_id(&m)), None)
        }
        Case::MissingMessage => req(M::DELETE, "/v1/messages/987654321", None),
        Case::Search => req(M::GET, "/v1/messages/search?q=hello", None),
        Case::SearchInGroup => req(
            M::GET,
            format!("/v1/messages/search?q=hello&group_id={g}"),
            None,
        ),
        Case::WebSocket => req(M::GET, "/ws", None),
        Case::DirectGet => req(M::GET, format!("/v1/groups/{d}"), None),
        Case::DirectPatch => req(
            M::PATCH,
            format!("/v1/groups/{d}"),
            Some(json!({"name": "Not a group"})),
        ),
        Case::DirectDelete => req(M::DELETE, format!("/v1/groups/{d}"), None),
        Case::DirectAddMember => req(
            M::POST,
            format!("/v1/groups/{d}/members"),
            Some(json!({"user_id": fx.extra.id})),
        ),
        Case::DirectListMembers => req(M::GET, format!("/v1/groups/{d}/members"), None),
        Case::DirectRemoveSelf => req(M::DELETE, format!("/v1/groups/{d}/members/{}", me.id), None),
        Case::DirectMarkRead => req(
            M::POST,
            format!("/v1/groups/{d}/read"),
            Some(json!({"message_id": fx.direct_message})),
        ),
        Case::DirectPost => req(
            M::POST,
            format!("/v1/messages/group/{d}"),
            Some(json!({"content": format!("direct via group route {cell}")})),
        ),
        Case::DirectHistory => req(M::GET, format!("/v1/messages/group/{d}"), None),
        Case::DirectEdit => req(
            M::PATCH,
            format!("/v1/messages/{}", fx.direct_message),
            Some(json!({"content": format!("direct edit {cell}")})),
        ),
        Case::DirectDeleteMessage => {
            let m = api
                .send_direct(&fx.owner, fx.member.id, &format!("direct to delete {cell}"))
                .await;
            req(M::DELETE, format!("/v1/messages/{}", message_id(&m)), None)
        }
        Case::DirectSearch => req(
            M::GET,
            format!("/v1/messages/search?q=hello&group_id={d}"),
            None,
        ),
        // A JSON string is a file like any other (its type is read from its bytes).
        Case::Upload => req(
            M::POST,
            "/v1/attachments?name=cell.txt",
            Some(json!(format!("cell {cell}"))),
        ),
        Case::GetAttachment => req(M::GET, format!("/v1/attachments/{}", fx.image), None),
        Case::GetUnsentAttachment => req(M::GET, format!("/v1/attachments/{}", fx.unsent), None),
        Case::GetDirectAttachment => {
            req(M::GET, format!("/v1/attachments/{}", fx.direct_file), None)
        }
        Case::MissingAttachment => req(M::GET, "/v1/attachments/987654321", None),
        Case::Thumbnail => req(
            M::GET,
            format!("/v1/attachments/{}/thumbnail", fx.image),
            None,
        ),
        Case::TextThumbnail => req(
            M::GET,
            format!("/v1/attachments/{}/thumbnail", fx.text_file),
            None,
        ),
        Case::React => req(M::PUT, reaction(fx.owner_message, "%F0%9F%91%8D"), None),
        Case::Unreact => req(M::DELETE, reaction(fx.owner_message, "%F0%9F%91%8D"), None),
        Case::ReactInvalid => req(M::PUT, reaction(fx.owner_message, "thumbs"), None),
        Case::DirectReact => req(M::PUT, reaction(fx.direct_message, "%F0%9F%8E%89"), None),
    }
}

fn reaction(message: i64, emoji: &str) -> String {
    format!("/v1/messages/{message}/reactions/{emoji}")
}

/// A WebSocket upgrade: 101 when accepted (the socket is then closed), else the refusal's
/// status after checking its body is the contract's error.
async fn ws_status(api: &Api, token: Option<&str>) -> u16 {
    let request = ws_url(api.addr, token, None)
        .into_client_request()
        .expect("ws request");
    let (status, body) = ws_attempt(request).await;
    if status != 101 {
        check_error_body(status, &body, "GET /ws");
    }
    status
}

fn check_error_body(status: u16, body: &Value, what: &str) {
    let keys: BTreeSet<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert!(
        keys == BTreeSet::from(["error", "code"])
            && body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: a {status} without the contract's error body: {body}"
    );
}

fn served(server: &TestServer) -> BTreeSet<(String, String)> {
    server
        .server()
        .routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect()
}

#[test]
fn the_table_has_no_duplicate_cases() {
    let mut seen = BTreeSet::new();
    for (_, _, case, _) in TABLE {
        assert!(seen.insert(format!("{case:?}")), "{case:?} appears twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_times_every_role_answers_as_the_table_says() {
    let server = TestServer::start().await;

    // The table covers every served route, and names no route that is not served.
    let served = served(&server);
    let covered: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the authorisation matrix: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&served).collect();
    assert!(stale.is_empty(), "rows for routes not served: {stale:?}");

    let mut fx = Fixture::new(&server).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for (row, (method, route, case, expected)) in TABLE.iter().enumerate() {
        for (col, role) in ROLES.iter().enumerate() {
            let cell = row * ROLES.len() + col;
            let r = build(&server, &fx, *case, *role, cell).await;
            assert_eq!(r.method.as_str(), *method, "{case:?}: method of the row");
            let token = fx.session(*role).map(|s| s.token.as_str());
            let status = if matches!(case, Case::WebSocket) {
                ws_status(&server, token).await
            } else {
                let bytes = r.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
                let (status, text) = server.raw(r.method.clone(), &r.path, token, bytes).await;
                if status >= 400 {
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    check_error_body(status, &body, &format!("{method} {}", r.path));
                }
                status
            };
            cells += 1;
            if matches!(case, Case::PutPassword) && status == 204 {
                fx.sign_in_again(&server, *role).await;
            }
            assert_ne!(
                status, 500,
                "{method} {route} ({case:?}) as {role:?} answered 500"
            );
            if status != expected[col] {
                failures.push(format!(
                    "{method} {route} [{case:?}] as {role:?}: expected {}, got {status} ({} {})",
                    expected[col], r.method, r.path
                ));
            }
        }
    }
    eprintln!(
        "authorisation matrix: {} rows x {} roles = {cells} cells over {} routes",
        TABLE.len(),
        ROLES.len(),
        served.len()
    );
    assert!(
        failures.is_empty(),
        "{} cells differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
