//! The first thing anyone does: two people log in, one writes, the other sees it at once.

use serde_json::json;

use super::*;
use crate::helpers::*;

async fn two_people_chat_live(size: Size) {
    let Some(mut browser) = chromium().await else {
        return;
    };
    let server = TestServer::start().await;
    let page = format!("http://{}/", server.addr);
    let ava = browser.tab(&page, size).await;
    let mike = browser.tab(&page, size).await;
    browser.log_in(&ava, "Ava", SEED_PASSWORD).await;
    browser.log_in(&mike, "Mike", SEED_PASSWORD).await;
    browser.open(&mike, "General").await;
    browser.open(&ava, "General").await;

    let text = format!("Hello from Ava's browser {}", std::process::id());
    browser.say(&ava, &text).await;
    browser.sees_message(&mike, &text).await;

    // It was really sent through the server, once, and is shown once.
    let (status, page) = server
        .get(
            &format!("/v1/messages/group/{GENERAL}"),
            Some(&server.ava().await.token),
        )
        .await;
    assert_eq!(status, 200);
    let copies = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["content"] == text.as_str())
        .count();
    assert_eq!(copies, 1, "{page}");
    let shown = format!(
        "[...document.querySelectorAll('#messages [data-message-id] .text')].filter(m => m.textContent === {text:?}).length"
    );
    assert_eq!(
        browser.eval(&mike, &shown).await,
        json!(1),
        "shown once to Mike"
    );
    browser.no_errors(&ava).await;
    browser.no_errors(&mike).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_live_on_a_desktop() {
    two_people_chat_live(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_live_on_a_phone() {
    two_people_chat_live(PHONE).await;
}
