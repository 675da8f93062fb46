//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types. `tests/openapi.rs` fails when a served route is missing here.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, groups, messages, ops, users, web, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatserver",
        description = "A real-time chat server on one SQLite file. Errors are \
            `{\"error\": \"<sentence>\", \"code\": \"<snake_case>\"}`; times are RFC 3339 UTC \
            with milliseconds. The WebSocket's frames are described in the README."
    ),
    paths(
        ops::health, ops::openapi_json, ops::docs, ops::metrics,
        auth::login, auth::refresh, auth::logout, auth::test_auth,
        users::register, users::me, users::update_me, users::change_password, users::list,
        users::one,
        groups::create, groups::list, groups::get, groups::rename, groups::delete,
        groups::add_member, groups::members, groups::remove_member, groups::read, groups::direct,
        messages::send, messages::history, messages::send_direct, messages::direct_history,
        messages::edit, messages::delete, messages::search,
        ws::upgrade,
        web::index, web::app_js, web::style_css,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once.
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        doc.to_json().expect("the OpenAPI document serialises")
    })
    .clone()
}
