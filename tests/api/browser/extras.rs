//! What can go wrong around the composer, and what is far away: files the server refuses show
//! why, plainly, and can be taken out again; a reply whose original is not loaded yet goes back
//! through older pages to it; a reply in progress is cancelled with Escape. At both sizes.

use serde_json::json;

use super::attachments::{file, message};
use super::*;
use crate::helpers::*;

async fn refused_files_and_a_quote_far_back(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let server = TestServer::start_with(|c| c.max_attachment = 1000).await;
    let (ava_s, mike_s) = (server.ava().await, server.mike().await);
    let question = "The first question, far back";
    let asked = server.send(&mike_s, GENERAL, question).await;
    for i in 0..60 {
        server.send(&ava_s, GENERAL, &format!("filler {i}")).await;
    }
    let answer = "Answering that at last";
    let (status, body) = server
        .send_body(
            &ava_s,
            GENERAL,
            &json!({"content": answer, "reply_to": asked["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let page = format!("http://{}/", server.addr);
    let ava = b.tab(&page, size).await;
    let mike = b.tab(&page, size).await;
    b.log_in(&ava, "Ava", SEED_PASSWORD).await;
    b.log_in(&mike, "Mike", SEED_PASSWORD).await;
    b.open(&mike, "General").await;
    b.open(&ava, "General").await;

    // The original is not on the first page; the quote goes back to it and shows it.
    b.message_shows(
        &mike,
        answer,
        &format!("m.querySelector('.quote')?.textContent.includes({question:?})"),
        "the quote of a message far back",
    )
    .await;
    let loaded = format!("!!{}", message(question));
    assert_eq!(b.eval(&mike, &loaded).await, json!(false), "not loaded yet");
    b.eval(
        &mike,
        &format!("{}.querySelector('.quote').click(), true", message(answer)),
    )
    .await;
    b.message_shows(
        &mike,
        question,
        "m.classList.contains('found')",
        "the original, loaded and highlighted",
    )
    .await;

    // Ava drops a file over the server's limit and an empty one: each says why, plainly.
    let drop = format!(
        "(() => {{ const dt = new DataTransfer(); dt.items.add({}); dt.items.add({}); \
         const e = new DragEvent('drop', {{dataTransfer: dt, bubbles: true, cancelable: true}}); \
         document.querySelector('#messages').dispatchEvent(e); return e.defaultPrevented; }})()",
        file("big.bin", "application/octet-stream", &[7u8; 2000]),
        file("empty.txt", "text/plain", b"")
    );
    assert_eq!(b.eval(&ava, &drop).await, json!(true));
    let chip = |name: &str, says: &str| {
        format!(
            "[...document.querySelectorAll('#pending-files .pending-file.is-failed')]\
             .some(f => f.textContent.includes({name:?}) && f.querySelector('.pf-status').textContent === {says:?})"
        )
    };
    b.wait_for(
        &ava,
        &chip("big.bin", "Too large: an attachment is at most 1000 B."),
        "the too-large file's reason",
    )
    .await;
    b.wait_for(
        &ava,
        &chip("empty.txt", "The file is empty."),
        "the empty file's reason",
    )
    .await;
    b.click(&ava, "Send").await;
    b.sees(
        &ava,
        "Those files could not be uploaded: remove them, or add others.",
    )
    .await;
    b.snap(&ava, size, "upload-errors").await;
    b.click(&ava, "Remove big.bin").await;
    b.click(&ava, "Remove empty.txt").await;
    b.wait_for(
        &ava,
        "document.querySelector('#pending-files').hidden",
        "the refused files taken out",
    )
    .await;

    // A reply begun and cancelled with Escape; then one cancelled with its ×.
    b.on_message(&ava, answer, "Reply").await;
    b.sees(&ava, "Replying to You: Answering that at last")
        .await;
    b.press(&ava, "Escape").await;
    b.wait_for(
        &ava,
        "document.querySelector('#reply-bar').hidden",
        "the reply cancelled by Escape",
    )
    .await;
    b.on_message(&ava, "filler 59", "Reply").await;
    b.click(&ava, "Cancel reply").await;
    b.wait_for(
        &ava,
        "document.querySelector('#reply-bar').hidden",
        "the reply cancelled by its ×",
    )
    .await;
    b.say(&ava, "not a reply").await;
    let last = server.full_history(&ava_s, GENERAL).await;
    assert_eq!(last.last().unwrap()["reply_to"], json!(null));

    for tab in [&ava, &mike] {
        b.no_errors(tab).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_files_and_a_quote_far_back_on_a_desktop() {
    refused_files_and_a_quote_far_back(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_files_and_a_quote_far_back_on_a_phone() {
    refused_files_and_a_quote_far_back(PHONE).await;
}
