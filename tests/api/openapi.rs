//! /openapi.json documents every route the router serves, and nothing it does not.

use std::collections::BTreeSet;

use crate::helpers::*;
use reqwest::Method;
use serde_json::Value;

async fn document(api: &Api) -> Value {
    let (status, doc) = api.get("/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");
    doc
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

fn served(server: &TestServer) -> BTreeSet<(String, String)> {
    server
        .server()
        .routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_route_is_documented_and_every_documented_one_served() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let served = served(&server);
    let documented = documented(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        phantom.is_empty(),
        "in /openapi.json but not served: {phantom:?}"
    );
    // The contract's routes are all there (a sample across every area).
    for route in [
        ("POST", "/v1/users/register"),
        ("POST", "/v1/auth/refresh"),
        ("PUT", "/v1/me/password"),
        ("DELETE", "/v1/groups/{id}/members/{user_id}"),
        ("POST", "/v1/direct/{user_id}"),
        ("GET", "/v1/messages/search"),
        ("GET", "/ws"),
        ("GET", "/metrics"),
    ] {
        let key = (route.0.to_string(), route.1.to_string());
        assert!(served.contains(&key), "{route:?} is not served");
    }
}

/// The table the test above compares is the router's own: each entry, with its path
/// parameters filled in, reaches a handler rather than "no such route" or 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_table_matches_what_the_router_answers() {
    let server = TestServer::start().await;
    for (method, path) in served(&server) {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = server.raw(method.clone(), &concrete, None, None).await;
        assert_ne!(status, 405, "{method} {concrete}: {body}");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {concrete} is in the table but the router does not know it: {body}"
        );
    }
    // And the probe can tell: an unknown route is "no such route".
    let (status, body) = server
        .raw(Method::GET, "/v1/nothing/here", None, None)
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("no such route"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_describe_their_bodies_and_errors() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let send = &doc["paths"]["/v1/messages/group/{id}"]["post"];
    assert!(
        send["requestBody"]["content"]["application/json"]["schema"].is_object(),
        "{send}"
    );
    for status in ["201", "400", "401", "403", "404"] {
        assert!(
            send["responses"][status].is_object(),
            "no {status} in {send}"
        );
    }
    assert!(
        send["security"].is_array(),
        "protected routes name the bearer scheme"
    );
    let message = &doc["components"]["schemas"]["Message"]["properties"];
    for field in MESSAGE_FIELDS {
        assert!(
            message[field].is_object(),
            "Message schema lacks {field}: {message}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{}",
        doc["components"]
    );
    // The public routes carry no security requirement.
    assert!(doc["paths"]["/v1/users/login"]["post"]["security"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_renders_the_document_without_outside_resources() {
    let server = TestServer::start().await;
    let (status, html) = server.raw(Method::GET, "/docs", None, None).await;
    assert_eq!(status, 200);
    assert!(html.contains("openapi.json"), "the page loads the document");
    for outside in ["http://", "https://", "//cdn"] {
        let offenders: Vec<&str> = html
            .lines()
            .filter(|l| l.contains(outside) && (l.contains("src=") || l.contains("href=")))
            .collect();
        assert!(offenders.is_empty(), "loads from outside: {offenders:?}");
    }
}

/// docs/API.md (the protocol for people) names every `/v1` route the server serves, as its
/// tables write them (without the `/v1/` prefix), so a new route cannot go undescribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_page_names_every_route() {
    let server = TestServer::start().await;
    let page = include_str!("../../docs/API.md");
    let missing: Vec<String> = served(&server)
        .into_iter()
        .filter_map(|(method, path)| {
            let short = path.strip_prefix("/v1/")?;
            (!page.contains(&format!("{short}`")) && !page.contains(&format!("{short}?")))
                .then(|| format!("{method} {path}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/API.md does not describe: {missing:?}"
    );
}
