//! The browser client: static files compiled into the binary (no build step, no CDN).

use warp::http::header;
use warp::reply::Response;

use super::{Request, Routes};
use crate::error::Result;

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_index, index)
        .add(__path_app_js, app_js)
        .add(__path_style_css, style_css)
        .add(__path_docs_js, docs_js)
        .add(__path_docs_css, docs_css)
        .add(__path_favicon, favicon)
        .add(__path_protocol, protocol)
        .add(__path_js_state, js_state)
        .add(__path_js_api, js_api)
        .add(__path_js_dom, js_dom)
        .add(__path_js_socket, js_socket)
        .add(__path_js_list, js_list)
        .add(__path_js_chat, js_chat)
        .add(__path_js_messages, js_messages)
        .add(__path_js_composer, js_composer)
        .add(__path_js_picker, js_picker)
        .add(__path_js_people, js_people)
        .add(__path_js_settings, js_settings)
        .add(__path_js_login, js_login)
        .add(__path_js_attachments, js_attachments)
        .add(__path_js_uploads, js_uploads)
        .add(__path_js_replies, js_replies)
        .add(__path_js_reactions, js_reactions)
        .add(__path_js_mentions, js_mentions);
}

/// One of the web client's modules (web/js/), as its own route.
macro_rules! module {
    ($name:ident, $path:literal, $file:literal) => {
        /// A module of the web client.
        #[utoipa::path(get, path = $path, tag = "web", responses(
            (status = 200, description = "A module of the web client", content_type = "text/javascript"),
        ))]
        async fn $name(_req: Request) -> Result<Response> {
            file(
                include_str!(concat!("../../web/js/", $file)),
                "text/javascript; charset=utf-8",
            )
        }
    };
}

module!(js_state, "/js/state.js", "state.js");
module!(js_api, "/js/api.js", "api.js");
module!(js_dom, "/js/dom.js", "dom.js");
module!(js_socket, "/js/socket.js", "socket.js");
module!(js_list, "/js/list.js", "list.js");
module!(js_chat, "/js/chat.js", "chat.js");
module!(js_messages, "/js/messages.js", "messages.js");
module!(js_composer, "/js/composer.js", "composer.js");
module!(js_picker, "/js/picker.js", "picker.js");
module!(js_people, "/js/people.js", "people.js");
module!(js_settings, "/js/settings.js", "settings.js");
module!(js_login, "/js/login.js", "login.js");
module!(js_attachments, "/js/attachments.js", "attachments.js");
module!(js_uploads, "/js/uploads.js", "uploads.js");
module!(js_replies, "/js/replies.js", "replies.js");
module!(js_reactions, "/js/reactions.js", "reactions.js");
module!(js_mentions, "/js/mentions.js", "mentions.js");

/// The protocol in full (HTTP and every socket frame): the repository's docs/API.md.
#[utoipa::path(get, path = "/docs/API.md", tag = "web", responses(
    (status = 200, description = "The protocol, as Markdown", content_type = "text/markdown"),
))]
async fn protocol(_req: Request) -> Result<Response> {
    file(
        include_str!("../../docs/API.md"),
        "text/markdown; charset=utf-8",
    )
}

/// The icon browsers ask for.
#[utoipa::path(get, path = "/favicon.ico", tag = "web", responses(
    (status = 200, description = "The web client's icon", content_type = "image/x-icon"),
))]
async fn favicon(_req: Request) -> Result<Response> {
    // The icon never changes within a version: a day's caching spares a request per page.
    let icon = include_bytes!("../../web/favicon.ico").as_slice();
    Ok(answer(
        Response::new(icon.into()),
        "image/x-icon",
        "public, max-age=86400",
    ))
}

fn file(body: &'static str, content_type: &'static str) -> Result<Response> {
    // The files change with the binary; revalidate rather than keep a stale client.
    Ok(answer(Response::new(body.into()), content_type, "no-cache"))
}

fn answer(mut res: Response, content_type: &'static str, cache: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(cache),
    );
    res
}

/// The web client.
#[utoipa::path(get, path = "/", tag = "web", responses(
    (status = 200, description = "The web client's page", content_type = "text/html"),
))]
async fn index(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/index.html"),
        "text/html; charset=utf-8",
    )
}

/// The web client's entry module.
#[utoipa::path(get, path = "/app.js", tag = "web", responses(
    (status = 200, description = "The web client's script", content_type = "text/javascript"),
))]
async fn app_js(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/app.js"),
        "text/javascript; charset=utf-8",
    )
}

/// The web client's styles.
#[utoipa::path(get, path = "/style.css", tag = "web", responses(
    (status = 200, description = "The web client's styles", content_type = "text/css"),
))]
async fn style_css(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/style.css"),
        "text/css; charset=utf-8",
    )
}

/// The API page's renderer.
#[utoipa::path(get, path = "/docs.js", tag = "web", responses(
    (status = 200, description = "The API page's renderer", content_type = "text/javascript"),
))]
async fn docs_js(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/docs.js"),
        "text/javascript; charset=utf-8",
    )
}

/// The API page's styles.
#[utoipa::path(get, path = "/docs.css", tag = "web", responses(
    (status = 200, description = "The API page's styles", content_type = "text/css"),
))]
async fn docs_css(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/docs.css"),
        "text/css; charset=utf-8",
    )
}
