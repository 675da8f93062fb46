//! Cross-origin requests. Browsers send `Origin`; curl and other programs do not and are never
//! affected. A request from the server's own origin is always fine. Another origin is allowed
//! only when `--cors-origin` names it (or is `*`); otherwise it is refused with 403, the
//! WebSocket upgrade included (browsers apply no CORS to WebSockets, so the server must).

use warp::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

#[derive(Clone, Debug, Default)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

pub enum Verdict {
    /// No `Origin`, or the server's own: nothing to add.
    SameOrigin,
    /// An allowed other origin: echo it back.
    Allowed(HeaderValue),
    Refused,
}

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "authorization, content-type";

impl Cors {
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            any: origins.iter().any(|o| o == "*"),
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Verdict::SameOrigin;
        };
        let text = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        let authority = text.split_once("://").map(|(_, rest)| rest);
        if authority.is_some() && authority == host.as_deref() {
            return Verdict::SameOrigin;
        }
        if self.any || self.origins.contains(&text) {
            return Verdict::Allowed(origin.clone());
        }
        Verdict::Refused
    }

    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to an allowed preflight.
    pub fn preflight<B: Default>(origin: &HeaderValue) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::NO_CONTENT;
        Cors::decorate(&mut res, origin);
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        res
    }

    /// Lets the allowed origin read a response.
    pub fn decorate<B>(res: &mut Response<B>, origin: &HeaderValue) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_and_no_origin_pass_others_need_the_list() {
        let none = Cors::new(&[]);
        assert!(matches!(
            none.check(&headers(None, "a:1")),
            Verdict::SameOrigin
        ));
        assert!(matches!(
            none.check(&headers(Some("http://a:1"), "a:1")),
            Verdict::SameOrigin
        ));
        assert!(matches!(
            none.check(&headers(Some("http://b"), "a:1")),
            Verdict::Refused
        ));
        assert!(matches!(
            none.check(&headers(Some("null"), "a:1")),
            Verdict::Refused
        ));
        let listed = Cors::new(&["http://B/".to_string()]);
        assert!(matches!(
            listed.check(&headers(Some("http://b"), "a:1")),
            Verdict::Allowed(_)
        ));
        let any = Cors::new(&["*".to_string()]);
        assert!(matches!(
            any.check(&headers(Some("null"), "a:1")),
            Verdict::Allowed(_)
        ));
    }
}
