//! What /openapi.json says besides its routes: the title, the description and the bearer
//! scheme. The routes and their schemas are added from the route table (see `router`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatserver",
        description = "A real-time chat server on one SQLite file. Errors are \
            `{\"error\": \"<sentence>\", \"code\": \"<snake_case>\"}`; times are RFC 3339 UTC \
            with milliseconds. The WebSocket (`GET /ws`), its frames and the rules of \
            each route are in the protocol's description, served at `/docs/API.md`."
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

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

/// The document before the routes are added.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
