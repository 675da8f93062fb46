//! The API page (/docs) as a person reads it: every route summarised, code shown as code,
//! nothing off the side of a phone's screen, and a way to the whole protocol.

use serde_json::json;

use super::*;
use crate::helpers::*;

async fn the_api_page_reads_well(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let server = TestServer::start().await;
    let tab = b.tab(&format!("http://{}/docs", server.addr), size).await;
    b.wait_for(
        &tab,
        "document.querySelectorAll('details.op').length > 20",
        "the routes",
    )
    .await;
    // Open every route, as a reader going through them would.
    b.eval(
        &tab,
        "document.querySelectorAll('details.op').forEach(d => d.open = true), true",
    )
    .await;
    b.snap(&tab, size, "docs").await;
    let unnamed = b
        .eval(&tab, "[...document.querySelectorAll('details.op > summary')].filter(s => !s.children[2].textContent.trim()).map(s => s.children[1].textContent)")
        .await;
    assert_eq!(unnamed, json!([]), "routes without a summary");
    let raw = b.eval(&tab, "document.body.innerText.includes('`')").await;
    assert_eq!(raw, json!(false), "backticks shown raw");
    let repeated = b
        .eval(&tab, "[...document.querySelectorAll('details.op')].filter(d => { const s = d.querySelector('summary').children[2].textContent.trim(); const p = d.querySelector(':scope > p'); return s && p && p.textContent.trim().startsWith(s); }).length")
        .await;
    assert_eq!(repeated, json!(0), "a summary repeated as its description");
    let wide = b
        .eval(
            &tab,
            "document.documentElement.scrollWidth - window.innerWidth",
        )
        .await;
    assert!(
        wide.as_i64().unwrap() <= 0,
        "the page scrolls sideways by {wide}px"
    );
    let link = b
        .eval(
            &tab,
            "document.querySelector('a[href=\"docs/API.md\"]') !== null",
        )
        .await;
    assert_eq!(link, json!(true));
    let (status, text) = server
        .raw(reqwest::Method::GET, "/docs/API.md", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("member_updated"),
        "the protocol lists every frame"
    );
    b.no_errors(&tab).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_reads_well_on_a_desktop() {
    the_api_page_reads_well(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_page_reads_well_on_a_phone() {
    the_api_page_reads_well(PHONE).await;
}
