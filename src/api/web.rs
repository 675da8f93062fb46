//! The browser client: static files compiled into the binary (no build step, no CDN).

use warp::http::header;
use warp::reply::Response;
use warp::Filter;

use super::Routes;

fn file(body: &'static str, content_type: &'static str) -> Response {
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
    res
}

pub fn routes(r: &mut Routes) {
    r.add::<__path_index>(warp::path::end().and(warp::get()).map(index));
    r.add::<__path_app_js>(warp::path!("app.js").and(warp::get()).map(app_js));
    r.add::<__path_style_css>(warp::path!("style.css").and(warp::get()).map(style_css));
}

/// The web client.
#[utoipa::path(get, path = "/", tag = "web", responses(
    (status = 200, description = "The web client's page", content_type = "text/html"),
))]
fn index() -> Response {
    file(
        include_str!("../../web/index.html"),
        "text/html; charset=utf-8",
    )
}

#[utoipa::path(get, path = "/app.js", tag = "web", responses(
    (status = 200, description = "The web client's script", content_type = "text/javascript"),
))]
fn app_js() -> Response {
    file(
        include_str!("../../web/app.js"),
        "text/javascript; charset=utf-8",
    )
}

#[utoipa::path(get, path = "/style.css", tag = "web", responses(
    (status = 200, description = "The web client's styles", content_type = "text/css"),
))]
fn style_css() -> Response {
    file(
        include_str!("../../web/style.css"),
        "text/css; charset=utf-8",
    )
}
