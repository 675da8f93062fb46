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
        .add(__path_docs_css, docs_css);
}

fn file(body: &'static str, content_type: &'static str) -> Result<Response> {
    let mut res = Response::new(body.into());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    // The files change with the binary; revalidate rather than keep a stale client.
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(res)
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

#[utoipa::path(get, path = "/app.js", tag = "web", responses(
    (status = 200, description = "The web client's script", content_type = "text/javascript"),
))]
async fn app_js(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/app.js"),
        "text/javascript; charset=utf-8",
    )
}

#[utoipa::path(get, path = "/style.css", tag = "web", responses(
    (status = 200, description = "The web client's styles", content_type = "text/css"),
))]
async fn style_css(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/style.css"),
        "text/css; charset=utf-8",
    )
}

#[utoipa::path(get, path = "/docs.js", tag = "web", responses(
    (status = 200, description = "The API page's renderer", content_type = "text/javascript"),
))]
async fn docs_js(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/docs.js"),
        "text/javascript; charset=utf-8",
    )
}

#[utoipa::path(get, path = "/docs.css", tag = "web", responses(
    (status = 200, description = "The API page's styles", content_type = "text/css"),
))]
async fn docs_css(_req: Request) -> Result<Response> {
    file(
        include_str!("../../web/docs.css"),
        "text/css; charset=utf-8",
    )
}
