//! The route table. A route is declared once, by its handler's `#[utoipa::path]` annotation:
//! the path and method it is served at, whether it needs a bearer token (its `security`), and
//! its OpenAPI operation all come from there, and `Routes::add` ties the annotation to the
//! handler. The same table routes requests, lists the served routes and builds /openapi.json,
//! so nothing can be served without being documented or documented without being served.
//! (`SchemaReferences` and `Tags` are how utoipa's own routers read an annotation's schemas
//! and tags; they are public but hidden in its docs.)

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{RefOr, Schema};
use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::error;
use super::request::Request;
use crate::error::{Error, Result};

/// A route as its OpenAPI annotation names it: `GET /v1/groups/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: Arc<str>,
}

/// The route a response came from, for the request log and the metrics.
#[derive(Clone, Debug)]
pub(crate) struct RouteName(pub Arc<str>);

type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Response>> + Send + Sync>;

/// One segment of a path template: a literal, or `{name}`, which matches a decimal id, or any
/// one segment (percent-decoded) when the operation documents that parameter as a string.
enum Segment {
    Literal(String),
    Id(Arc<str>),
    Text(Arc<str>),
}

/// The value a `{name}` segment of a request's path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathValue {
    Id(i64),
    Text(String),
}

/// The path parameters `operation` documents as strings.
fn text_params(operation: &Operation) -> Vec<String> {
    use utoipa::openapi::path::ParameterIn;
    let is_string = |p: &utoipa::openapi::path::Parameter| {
        serde_json::to_value(&p.schema)
            .ok()
            .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("string"))
    };
    operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            utoipa::openapi::RefOr::T(p) => Some(p),
            utoipa::openapi::RefOr::Ref(_) => None,
        })
        .filter(|p| p.parameter_in == ParameterIn::Path && is_string(p))
        .map(|p| p.name.clone())
        .collect()
}

/// `%XX` escapes decoded; a segment that is not UTF-8 afterwards keeps its bytes lossily (the
/// handler's check refuses it).
fn percent_decode(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Route {
    method: Method,
    path: Arc<str>,
    segments: Vec<Segment>,
    /// The operation names a security scheme: the caller must be authenticated first.
    secured: bool,
    operation: Operation,
    schemas: Vec<(String, RefOr<Schema>)>,
    handler: Handler,
}

/// The table being built: `add` each handler with its annotation.
#[derive(Default)]
pub(crate) struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Serves `handler` as its annotation documents it: `_doc` is the `__path_<handler>` that
    /// `#[utoipa::path]` makes.
    pub fn add<P, F, Fut>(&mut self, _doc: P, handler: F) -> &mut Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let path: Arc<str> = P::path().into();
        let mut operation = P::operation();
        let tags = P::tags().into_iter().map(str::to_string);
        operation.tags.get_or_insert_with(Vec::new).extend(tags);
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let texts = text_params(&operation);
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        for method in P::methods() {
            self.routes.push(Route {
                method: http_method(method),
                segments: parse_template(&path, &texts),
                path: Arc::clone(&path),
                secured,
                operation: operation.clone(),
                schemas: schemas.clone(),
                handler: Arc::clone(&handler),
            });
        }
        self
    }
}

fn http_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

fn utoipa_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::OPTIONS => HttpMethod::Options,
        Method::HEAD => HttpMethod::Head,
        Method::PATCH => HttpMethod::Patch,
        Method::TRACE => HttpMethod::Trace,
        _ => HttpMethod::Get,
    }
}

fn parse_template(path: &str, texts: &[String]) -> Vec<Segment> {
    split_path(path)
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if texts.iter().any(|t| t == name) => Segment::Text(name.into()),
                Some(name) => Segment::Id(name.into()),
                None => Segment::Literal(seg.to_string()),
            },
        )
        .collect()
}

/// A request path's segments: one leading `/` is dropped, and one trailing `/` is allowed.
fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let rest = match rest.strip_suffix('/') {
        Some(shorter) if !shorter.is_empty() => shorter,
        _ => rest,
    };
    rest.split('/').filter(move |_| !rest.is_empty())
}

/// An id as the API writes it: decimal digits, no sign, no leading zero (`/groups/01` and
/// `/groups/+1` name no group).
fn plain_decimal(part: &str) -> Option<i64> {
    let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

impl Route {
    /// The path's values by name if `path` matches this route's template.
    #[cfg(test)]
    fn matches(&self, path: &str) -> Option<Vec<(Arc<str>, PathValue)>> {
        self.matches_parts(&split_path(path).collect::<Vec<_>>())
    }

    /// `matches` on a path already split into its segments. Every request is tried against
    /// the routes in turn, so a route that cannot match says so before it allocates: by the
    /// number of segments, then by its literal ones.
    fn matches_parts(&self, parts: &[&str]) -> Option<Vec<(Arc<str>, PathValue)>> {
        if parts.len() != self.segments.len() {
            return None;
        }
        let pairs = || self.segments.iter().zip(parts);
        if pairs().any(|(segment, part)| matches!(segment, Segment::Literal(l) if l != part)) {
            return None;
        }
        let mut ids = Vec::new();
        for (segment, part) in pairs() {
            match segment {
                Segment::Literal(_) => {}
                Segment::Id(name) => {
                    ids.push((Arc::clone(name), PathValue::Id(plain_decimal(part)?)));
                }
                Segment::Text(name) if !part.is_empty() => {
                    ids.push((Arc::clone(name), PathValue::Text(percent_decode(part))));
                }
                Segment::Text(_) => return None,
            }
        }
        Some(ids)
    }
}

/// The finished table, shared by every request it routes.
pub(crate) struct Router {
    routes: Vec<Route>,
    openapi_json: String,
}

impl Router {
    pub fn new(routes: Routes, openapi: utoipa::openapi::OpenApi) -> Router {
        let mut router = Router {
            routes: routes.routes,
            openapi_json: String::new(),
        };
        router.openapi_json = router.document(openapi);
        router
    }

    /// Every route served, as documented.
    pub fn table(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|r| RouteInfo {
                method: r.method.clone(),
                path: Arc::clone(&r.path),
            })
            .collect()
    }

    pub fn openapi_json(&self) -> &str {
        &self.openapi_json
    }

    /// `base` with every route's operation and the schemas they refer to.
    fn document(&self, mut base: utoipa::openapi::OpenApi) -> String {
        let components = base.components.get_or_insert_with(Default::default);
        for r in &self.routes {
            base.paths.add_path_operation(
                &*r.path,
                vec![utoipa_method(&r.method)],
                r.operation.clone(),
            );
            for (name, schema) in &r.schemas {
                components.schemas.insert(name.clone(), schema.clone());
            }
        }
        base.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            String::from("{}")
        })
    }

    /// Finds the route for `req` and runs it: 404 when no route has its path, 405 (with
    /// `Allow`) when routes have its path but not its method.
    pub async fn dispatch(self: Arc<Self>, mut req: Request) -> Response {
        let mut allowed = Vec::new();
        let parts: Vec<&str> = split_path(req.path()).collect();
        let found = self.routes.iter().enumerate().find_map(|(i, r)| {
            let ids = r.matches_parts(&parts)?;
            if r.method == req.method {
                Some((i, ids))
            } else {
                allowed.push(r.method.as_str());
                None
            }
        });
        let Some((index, ids)) = found else {
            return unmatched(allowed);
        };
        let route = &self.routes[index];
        let name = RouteName(Arc::clone(&route.path));
        req.route(ids, Arc::clone(&self));
        let result = match route.secured {
            true => match req.authenticate().await {
                Ok(()) => (route.handler)(req).await,
                Err(e) => Err(e),
            },
            false => (route.handler)(req).await,
        };
        let mut response = result.unwrap_or_else(|e| error::response(&e));
        response.extensions_mut().insert(name);
        response
    }
}

fn unmatched(allowed: Vec<&str>) -> Response {
    if allowed.is_empty() {
        return error::response(&Error::not_found("no such route"));
    }
    let mut res = error::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    );
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut().insert(header::ALLOW, allow);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route {
            method: Method::GET,
            path: path.into(),
            segments: parse_template(path, &["emoji".to_string()]),
            secured: false,
            operation: Operation::new(),
            schemas: Vec::new(),
            handler: Arc::new(|_| Box::pin(async { Err(Error::internal("unused")) })),
        }
    }

    #[test]
    fn templates_match_whole_paths_with_decimal_ids() {
        let r = route("/v1/groups/{id}/members/{user_id}");
        let ids = r.matches("/v1/groups/3/members/7").expect("matches");
        let values: Vec<_> = ids.into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, [PathValue::Id(3), PathValue::Id(7)]);
        assert!(r.matches("/v1/groups/3/members/7/").is_some());
        assert!(r.matches("/v1/groups/x/members/7").is_none());
        assert!(r.matches("/v1/groups/3/members").is_none());
        assert!(r.matches("/v1/groups/3/members/7/8").is_none());
        assert!(r.matches("/v1/groups//members/7").is_none());
        for odd in ["01", "+1", "-1", "1e3", " 1", "99999999999999999999"] {
            let path = format!("/v1/groups/{odd}/members/7");
            assert!(r.matches(&path).is_none(), "{path} matched");
        }
        assert!(r.matches("/v1/groups/0/members/7").is_some());
        let root = route("/");
        assert!(root.matches("/").is_some());
        assert!(root.matches("//").is_none());
        assert!(root.matches("/x").is_none());
    }

    #[test]
    fn text_parameters_match_one_segment_percent_decoded() {
        let r = route("/v1/messages/{id}/reactions/{emoji}");
        let ids = r
            .matches("/v1/messages/4/reactions/%F0%9F%91%8D")
            .expect("matches");
        assert_eq!(ids[1].1, PathValue::Text("👍".into()));
        assert!(r.matches("/v1/messages/4/reactions/").is_none());
        assert!(r.matches("/v1/messages/4/reactions/a/b").is_none());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }
}
