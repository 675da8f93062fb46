//! Files, replies, reactions and mentions in the page: Ava answers Mike's question with an
//! image pasted into the composer and a file dropped on the conversation; Mike sees the
//! picture, the quote of his question and the file, live; Ava reacts and Mike sees it at once
//! (and the other way round). Then Ava mentions Mike through the @ list while he is elsewhere,
//! and his list shows the mention. At both sizes.

use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::helpers::*;

/// A JS string literal.
pub(super) fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The element of the message whose text is `text` (an expression; null while it is not there).
pub(super) fn message(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages [data-message-id]')].find(m => m.querySelector('.text').textContent === {})",
        js(text)
    )
}

/// A File of `bytes` called `name` (an expression).
pub(super) fn file(name: &str, kind: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!(
        "new File([Uint8Array.from(atob({}), c => c.charCodeAt(0))], {}, {{type: {}}})",
        js(&b64),
        js(name),
        js(kind)
    )
}

impl Browser {
    /// Presses `key` as the keyboard does, in whatever has the focus.
    pub(super) async fn press(&mut self, tab: &str, key: &str) {
        let code = match key {
            "Enter" => 13,
            "Tab" => 9,
            "Escape" => 27,
            "ArrowDown" => 40,
            "ArrowUp" => 38,
            _ => panic!("no key code for {key}"),
        };
        for kind in ["rawKeyDown", "keyUp"] {
            let event = json!({"type": kind, "key": key, "code": key,
                "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
            self.cdp
                .call(Some(tab), "Input.dispatchKeyEvent", event)
                .await;
        }
    }

    /// Waits until the message `text` is there and `check` (an expression of `m`, its
    /// element) holds.
    pub(super) async fn message_shows(&mut self, tab: &str, text: &str, check: &str, what: &str) {
        let cond = format!("(m => !!m && ({check}))({})", message(text));
        self.wait_for(tab, &cond, what).await;
    }
}

async fn a_pasted_image_answers_and_is_reacted_to(size: Size) {
    let Some(mut b) = chromium().await else {
        return;
    };
    let server = TestServer::start().await;
    let (ava_s, mike_s) = (server.ava().await, server.mike().await);
    server.create_group(&mike_s, "Side room", &[ava_s.id]).await;
    let page = format!("http://{}/", server.addr);
    let ava = b.tab(&page, size).await;
    let mike = b.tab(&page, size).await;
    b.log_in(&ava, "Ava", SEED_PASSWORD).await;
    b.log_in(&mike, "Mike", SEED_PASSWORD).await;
    b.open(&mike, "General").await;
    b.open(&ava, "General").await;

    let question = "Can you send me the screenshot?";
    b.say(&mike, question).await;
    b.sees_message(&ava, question).await;

    // Ava answers it: Reply, then a picture pasted into the composer (a real paste event).
    b.on_message(&ava, question, "Reply").await;
    b.sees(&ava, "Replying to Mike: Can you send me the screenshot?")
        .await;
    let picture = png(240, 160);
    let paste = format!(
        "(() => {{ const dt = new DataTransfer(); dt.items.add({}); \
         const input = document.querySelector('#composer-input'); input.focus(); \
         const e = new ClipboardEvent('paste', {{clipboardData: dt, bubbles: true, cancelable: true}}); \
         input.dispatchEvent(e); return e.defaultPrevented; }})()",
        file("screenshot.png", "image/png", &picture)
    );
    assert_eq!(
        b.eval(&ava, &paste).await,
        json!(true),
        "the page takes the paste"
    );
    b.wait_for(
        &ava,
        "[...document.querySelectorAll('#pending-files .pending-file.is-done')].some(f => f.textContent.includes('screenshot.png'))",
        "the pasted picture uploaded",
    )
    .await;
    b.fill(&ava, "Message", "Here it is").await;
    b.snap(&ava, size, "attachment-pending").await;
    b.click(&ava, "Send").await;
    b.sees_message(&ava, "Here it is").await;
    b.wait_for(
        &ava,
        "document.querySelector('#pending-files').hidden && document.querySelector('#reply-bar').hidden",
        "the composer emptied",
    )
    .await;

    // A file dropped on the conversation goes as a message without text.
    let drop = format!(
        "(() => {{ const dt = new DataTransfer(); dt.items.add({}); \
         const e = new DragEvent('drop', {{dataTransfer: dt, bubbles: true, cancelable: true}}); \
         document.querySelector('#messages').dispatchEvent(e); return e.defaultPrevented; }})()",
        file("notes.txt", "text/plain", b"meeting at 10\n")
    );
    assert_eq!(
        b.eval(&ava, &drop).await,
        json!(true),
        "the page takes the drop"
    );
    b.wait_for(
        &ava,
        "document.querySelector('#pending-files .pending-file.is-done')",
        "the dropped file uploaded",
    )
    .await;
    b.click(&ava, "Send").await;

    // Mike sees the picture itself, the quote of his question and the file, without reloading.
    b.message_shows(
        &mike,
        "Here it is",
        "m.querySelector('.files img')?.complete && m.querySelector('.files img').naturalWidth > 0",
        "the picture shown to Mike",
    )
    .await;
    b.message_shows(
        &mike,
        "Here it is",
        &format!(
            "m.querySelector('.quote')?.textContent.includes({})",
            js(question)
        ),
        "the quote of Mike's question",
    )
    .await;
    let notes = "[...document.querySelectorAll('#messages .file')].find(f => f.textContent.includes('notes.txt'))";
    b.wait_for(
        &mike,
        &format!("{notes} && {notes}.textContent.includes('14 B')"),
        "the file, with its size, for Mike",
    )
    .await;
    let label = b
        .eval(&mike, &format!("{notes}.getAttribute('aria-label')"))
        .await;
    assert_eq!(label, json!("Download notes.txt, 14 B"));

    // The quote goes to the original, highlighted.
    let quote = format!("{}.querySelector('.quote')", message("Here it is"));
    b.eval(&mike, &format!("{quote}.click(), true")).await;
    b.message_shows(
        &mike,
        question,
        "m.classList.contains('found')",
        "the original highlighted",
    )
    .await;

    // The picture opens whole, in the viewer.
    b.eval(
        &mike,
        &format!(
            "{}.querySelector('.thumb').click(), true",
            message("Here it is")
        ),
    )
    .await;
    b.wait_for(
        &mike,
        "document.querySelector('#viewer').open && document.querySelector('#viewer-image').complete && document.querySelector('#viewer-image').naturalWidth === 240",
        "the whole picture in the viewer",
    )
    .await;
    b.snap(&mike, size, "image-viewer").await;
    b.click(&mike, "Close").await;
    b.wait_for(
        &mike,
        "!document.querySelector('#viewer').open",
        "the viewer closed",
    )
    .await;

    // Ava reacts 👍 from the picker; Mike sees it live; his own click makes it 2 for Ava.
    b.on_message(&ava, "Here it is", "React").await;
    b.wait_for(&ava, "__t.button('React with 👍')", "the emoji picker")
        .await;
    b.snap(&ava, size, "emoji-picker").await;
    b.click(&ava, "React with 👍").await;
    let thumbs_up = |count: &str| {
        format!(
            "[...m.querySelectorAll('.reactions .reaction')].some(r => r.querySelector('.emoji').textContent === '👍' \
             && r.querySelector('.count').textContent === '{count}')"
        )
    };
    b.message_shows(
        &mike,
        "Here it is",
        &thumbs_up("1"),
        "Ava's 👍 on Mike's page",
    )
    .await;
    b.message_shows(
        &ava,
        "Here it is",
        "m.querySelector('.reaction[aria-pressed=\"true\"]')",
        "Ava's 👍 pressed on her page",
    )
    .await;
    let chip = format!("{}.querySelector('.reaction')", message("Here it is"));
    let title = b.eval(&mike, &format!("{chip}.title")).await;
    assert_eq!(title, json!("Ava reacted with 👍"));
    b.eval(&mike, &format!("{chip}.click(), true")).await;
    b.message_shows(
        &ava,
        "Here it is",
        &thumbs_up("2"),
        "Mike's 👍 too, on Ava's page",
    )
    .await;
    b.message_shows(
        &ava,
        "Here it is",
        "m.querySelector('.reaction').title === 'You and Mike reacted with 👍'",
        "who reacted, in the chip's title",
    )
    .await;
    b.snap(&mike, size, "conversation").await;

    // What the server has: the reply, the picture, both reactions.
    let history = server.full_history(&ava_s, GENERAL).await;
    let asked = history.iter().find(|m| m["content"] == question).unwrap();
    let answer = history
        .iter()
        .find(|m| m["content"] == "Here it is")
        .unwrap();
    assert_eq!(answer["reply_to"]["id"], asked["id"], "{answer}");
    assert_eq!(answer["attachments"][0]["content_type"], "image/png");
    assert_eq!(answer["attachments"][0]["width"], 240);
    assert_eq!(answer["reactions"][0]["count"], 2, "{answer}");
    let dropped = history.last().unwrap();
    assert_eq!(dropped["content"], "", "{dropped}");
    assert_eq!(dropped["attachments"][0]["name"], "notes.txt");

    // Mike goes elsewhere (on a phone: back to the list); Ava mentions him through the @ list.
    b.open(&mike, "Side room").await;
    if size.mobile {
        b.click(&mike, "Back to conversations").await;
    }
    b.fill(&ava, "Message", "Thanks @mi").await;
    let option = "[...document.querySelectorAll('#mention-list [role=option]')].find(o => o.textContent.includes('Mike'))";
    b.wait_for(&ava, option, "Mike offered in the @ list").await;
    b.snap(&ava, size, "mention-list").await;
    if size.mobile {
        b.eval(&ava, &format!("{option}.click(), true")).await; // a tap
    } else {
        b.press(&ava, "Enter").await; // the keyboard
    }
    b.wait_for(
        &ava,
        "document.querySelector('#composer-input').value === 'Thanks @Mike ' && document.querySelector('#mention-list').hidden",
        "@Mike written in the composer",
    )
    .await;
    b.click(&ava, "Send").await;
    b.sees_message(&ava, "Thanks @Mike").await;

    let badge = format!(
        "document.querySelector('#conversations [data-conversation-id=\"{GENERAL}\"] .mention-badge')"
    );
    let badge_shown = format!("{badge} && __t.shown({badge}) && {badge}.textContent === '@'");
    b.wait_for(&mike, &badge_shown, "the mention badge on General, live")
        .await;
    b.snap(&mike, size, "mention-badge").await;

    // It is the server's count too: still there after a reload.
    b.cdp
        .call(Some(mike.as_str()), "Page.reload", json!({}))
        .await;
    b.connected(&mike, "Mike").await;
    if !size.mobile {
        b.open(&mike, "Side room").await;
    }
    b.wait_for(&mike, &badge_shown, "the mention badge after a reload")
        .await;

    // Opening General reads it: the badge goes, the message stands out, @Mike marked.
    b.open(&mike, "General").await;
    b.message_shows(
        &mike,
        "Thanks @Mike",
        "m.classList.contains('mentions-me') && m.querySelector('.mention-me')?.textContent === '@Mike'",
        "the mention highlighted for Mike",
    )
    .await;
    b.wait_for(&mike, &format!("{badge}.hidden"), "the badge cleared")
        .await;
    b.snap(&mike, size, "mentioned").await;

    for tab in [&ava, &mike] {
        b.no_errors(tab).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_image_answers_and_is_reacted_to_on_a_desktop() {
    a_pasted_image_answers_and_is_reacted_to(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_image_answers_and_is_reacted_to_on_a_phone() {
    a_pasted_image_answers_and_is_reacted_to(PHONE).await;
}
